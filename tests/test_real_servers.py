"""Completeness against servers as they really are (issue 16's reproductions, one test each):
cursors purged, refused with 400 or 404 or answered with an empty or the first page; a gap's
cursor re-stamped; jobs out of order under cut-offs; flaky and failing single-job GETs; routes
that cannot page; fractional times; ties; jobs that never finish."""

import json
import random
import time
from collections import deque
from typing import Any

import pytest
import sqlalchemy as sa

from archiver.models import job_refresh, jobs, sync_gaps
from archiver.sync import sync
from tests.conftest import assert_archive_equals, cli_env, run_cli
from tests.fake_api import FakeApi, add_new_jobs, error_reply, finish_job, make_jobs
from tests.test_coverage import cut_off, settled
from tests.test_sync import api_for

PERSONALITIES = ["400", "404", "empty", "first"]  # how an unknown cursor is answered


class PurgeOnPage(FakeApi):
    """Removes `victim` from the listing as list page `at` (1-based) is asked for."""

    def __init__(self, history: list[dict[str, Any]], victim: str, at: int) -> None:
        super().__init__(history)
        self.victim, self.at = victim, at

    def list_page(self, params: dict[str, str]) -> Any:
        if self.pages_served == self.at:
            self.jobs = [j for j in self.jobs if j["id"] != self.victim]
        return super().list_page(params)


def vanished_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None))).scalars())


def gap_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        g = sync_gaps.c
        return [tuple(r) for r in conn.execute(sa.select(g.after_id, g.until_id, g.blocked_reason))]


@pytest.mark.parametrize("personality", PERSONALITIES)
def test_a_cursor_purged_between_two_pages_is_walked_around_not_blamed_on_the_route(
    engine: sa.Engine, personality: str
) -> None:
    history = settled(250, seed=160)
    victim = history[99]  # ends page 5 at --limit 20; gone before page 6 is asked for
    fake = PurgeOnPage(history, victim["id"], at=6)
    fake.unknown_cursor = personality
    result = sync(api_for(fake), engine, limit=20)
    assert result.partial is None and gap_rows(engine) == []
    assert_archive_equals(engine, sorted([*fake.jobs, victim], key=lambda j: -j["created_at"]))
    assert vanished_ids(engine) == set()  # a full walk, not one 404, marks it
    rng = random.Random(160)
    add_new_jobs(fake.jobs, 50, rng)
    for job in fake.jobs[:50]:
        finish_job(job)
    sync(api_for(fake), engine, limit=20)  # no refusal is remembered: every new job at once
    assert_archive_equals(engine, sorted([*fake.jobs, victim], key=lambda j: -j["created_at"]))


@pytest.mark.parametrize("personality", PERSONALITIES)
def test_a_gap_whose_cursor_job_was_purged_is_walked_from_the_nearest_job_still_listed(
    engine: sa.Engine, personality: str
) -> None:
    fake = FakeApi(settled(300, seed=161))
    fake.unknown_cursor = personality
    cut_off(fake, engine, 3, limit=20)  # a first sync cut off: a gap after job 59 to the end
    assert gap_rows(engine) == [(fake.jobs[59]["id"], None, None)]
    purged = fake.jobs.pop(59)
    result = sync(api_for(fake), engine, limit=20)
    assert result.partial is None and gap_rows(engine) == []
    assert_archive_equals(engine, sorted([*fake.jobs, purged], key=lambda j: -j["created_at"]))


def test_an_unknown_cursor_answered_404_is_a_refused_cursor_not_a_wrong_base_url(engine: sa.Engine) -> None:
    fake = FakeApi(settled(300, seed=162))
    fake.unknown_cursor = "404"
    cut_off(fake, engine, 3, limit=20)
    fake.jobs.pop(59)
    for _ in range(2):  # every run, not only --full, gets past it
        sync(api_for(fake), engine, limit=20)
    assert gap_rows(engine) == []


def test_a_gap_whose_cursor_job_was_re_stamped_down_the_listing_skips_nothing(engine: sa.Engine) -> None:
    fake = FakeApi(settled(300, seed=163))
    cut_off(fake, engine, 3, limit=20)
    moved = fake.jobs.pop(59)  # the gap's cursor: re-stamped to sit 100 places further down
    moved["created_at"] = fake.jobs[158]["created_at"] - 1
    fake.jobs.insert(159, moved)
    sync(api_for(fake), engine, limit=20)
    assert gap_rows(engine) == []
    assert_archive_equals(engine, fake.jobs)


def new_jobs_with_one_out_of_order(fake: FakeApi, n: int, at: int, seed: int) -> None:
    """n new final jobs at the head; the one at position `at` is stamped older than every archived job."""
    rng = random.Random(seed)
    oldest = min(j["created_at"] for j in fake.jobs)
    add_new_jobs(fake.jobs, n, rng)
    for job in fake.jobs[:n]:
        finish_job(job)
    fake.jobs[at]["created_at"] = oldest - 10_000


def test_a_disorder_seen_by_a_run_that_is_cut_off_is_not_forgotten(engine: sa.Engine) -> None:
    fake = FakeApi(settled(300, seed=164))
    sync(api_for(fake), engine, limit=20)
    new_jobs_with_one_out_of_order(fake, 60, at=10, seed=164)
    cut_off(fake, engine, 1, limit=20)  # page 1 showed the disorder, then the network went
    sync(api_for(fake), engine, limit=20)
    assert_archive_equals(engine, fake.jobs)
    assert gap_rows(engine) == []


def test_a_disorder_seen_by_a_gap_walk_makes_it_walk_to_the_end(engine: sa.Engine) -> None:
    fake = FakeApi(settled(300, seed=165))
    sync(api_for(fake), engine, limit=20)
    new_jobs_with_one_out_of_order(fake, 60, at=45, seed=165)
    cut_off(fake, engine, 1, limit=20)  # a gap from page 1 to the newest archived job
    sync(api_for(fake), engine, limit=20)  # its gap walk meets the job out of order on page 3
    assert_archive_equals(engine, fake.jobs)
    assert gap_rows(engine) == []


def in_flight_deep(n: int, at: int, seed: int) -> list[dict[str, Any]]:
    history = settled(n, seed=seed)
    history[at].update(status="running", finished_at=None, fine_tuned_model=None, trained_tokens=None)
    history[at]["error"] = None
    return history


def test_one_transient_404_on_an_in_flight_jobs_get_is_not_taken_for_vanishing(engine: sa.Engine) -> None:
    fake = FakeApi(in_flight_deep(600, 450, seed=166))
    job = fake.jobs[450]
    sync(api_for(fake), engine, limit=100)
    fake.get_faults[job["id"]] = deque([error_reply(404, "No such job")])
    assert list(sync(api_for(fake), engine, limit=100).unrefreshed) == [job["id"]]  # exit 5, not vanished
    assert vanished_ids(engine) == set()
    finish_job(job)
    assert sync(api_for(fake), engine, limit=100).unrefreshed == {}  # asked again: there, and healed
    assert vanished_ids(engine) == set()
    assert_archive_equals(engine, fake.jobs)


def test_an_in_flight_job_whose_get_keeps_failing_holds_up_nothing_else(engine: sa.Engine) -> None:
    fake = FakeApi(in_flight_deep(600, 450, seed=167))
    fake.jobs[460].update(status="queued", finished_at=None, fine_tuned_model=None, trained_tokens=None)
    broken, other = fake.jobs[450], fake.jobs[460]
    sync(api_for(fake), engine, limit=100)
    add_new_jobs(fake.jobs, 200, random.Random(167))
    for job in fake.jobs[:200]:
        finish_job(job)
    cut_off(fake, engine, 1, limit=100)  # 100 of the 200 new jobs wait in a gap
    fake.get_faults[broken["id"]] = deque([error_reply(500, "Something went wrong")] * 100)
    finish_job(other)
    result = sync(api_for(fake), engine, limit=100)  # exits normally: gaps walked, others refreshed
    assert list(result.unrefreshed) == [broken["id"]]
    assert_archive_equals(engine, fake.jobs)  # the other job's refresh and all 200 new jobs kept
    with engine.connect() as conn:
        failing = conn.execute(sa.select(job_refresh.c.failures, job_refresh.c.error)).one()
    assert failing[0] == 1 and "HTTP 500" in failing[1]
    finish_job(broken)
    fake.get_faults.clear()
    assert list(sync(api_for(fake), engine, limit=100).unrefreshed) == [broken["id"]]  # not due: stale
    with engine.begin() as conn:  # a minute later
        conn.execute(job_refresh.update().values(due_at=time.time() - 1))
    assert sync(api_for(fake), engine, limit=100).unrefreshed == {}
    assert_archive_equals(engine, fake.jobs)


class NoHasMore(FakeApi):
    """A route like Bedrock through the gateway: every request gets the first page, no has_more."""

    paging = True

    def list_page(self, params: dict[str, str]) -> Any:
        if self.paging:
            return super().list_page(params)
        reply = super().list_page({"limit": params.get("limit", "20")})
        body = reply.body.replace(b', "has_more": true', b"").replace(b', "has_more": false', b"")
        reply.body = body
        return reply


def test_full_on_a_route_that_cannot_page_refreshes_the_in_flight_jobs_off_its_first_page(
    engine: sa.Engine,
) -> None:
    fake = NoHasMore(in_flight_deep(300, 150, seed=168))
    sync(api_for(fake), engine, limit=100)  # archived while the route could page
    fake.paging = False
    finish_job(fake.jobs[150])
    result = sync(api_for(fake), engine, full=True, limit=100)
    assert result.partial is not None  # says it could not walk the rest
    assert_archive_equals(engine, fake.jobs)


def test_a_fractional_created_at_is_stored_as_whole_seconds_and_no_op_runs_stay_one_request(
    engine: sa.Engine,
) -> None:
    history = settled(300, seed=169)
    for job in history[:3]:
        job["created_at"] += 0.25
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=20)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(jobs.c.created_at).where(jobs.c.id == history[0]["id"])).scalar()
    assert stored == int(history[0]["created_at"])
    for _ in range(4):
        assert sync(api_for(fake), engine, limit=20).requests == 1


@pytest.mark.parametrize("ids", ["ascending", "descending"])
def test_jobs_created_in_the_same_second_as_the_newest_archived_job_are_archived(
    engine: sa.Engine, ids: str
) -> None:
    """The newest 20 archived jobs share one second; 25 more arrive in that second. The API lists
    a second's jobs by id, ascending or descending: the new ones come after the archived ones or
    before them, a page and more of them."""
    fake = FakeApi(settled(100, seed=170))
    second = fake.jobs[0]["created_at"] + 60

    def tied(jobs: list[dict[str, Any]], first: int) -> list[dict[str, Any]]:
        for k, job in enumerate(jobs):
            job.update(id=f"ftjob-tie{first + k:03d}", created_at=second)
            finish_job(job)
        return jobs if ids == "ascending" else jobs[::-1]

    fake.jobs[:0] = tied(make_jobs(20, seed=171), 0)
    sync(api_for(fake), engine, limit=20)
    new = tied(make_jobs(25, seed=172), 100)
    if ids == "ascending":
        fake.jobs[20:20] = new
    else:
        fake.jobs[:0] = new
    sync(api_for(fake), engine, limit=20)
    assert_archive_equals(engine, fake.jobs)


def test_jobs_that_never_finish_are_refreshed_less_and_less_often(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    history = settled(5000, seed=172)
    rng = random.Random(172)
    for job in rng.sample(history[10:], 196):
        job.update(status=rng.choice(["paused", "on_hold_by_provider"]), finished_at=None)
        job.update(fine_tuned_model=None, trained_tokens=None, error=None)
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=100)
    with engine.begin() as conn:  # months later: unchanged since
        conn.execute(jobs.update().values(last_seen_at=time.time() - 90 * 86400))
    sync(api_for(fake), engine, limit=100)  # sees each once more, then lets them wait
    caplog.clear()
    for _ in range(3):
        assert sync(api_for(fake), engine, limit=100).requests <= 10
    assert caplog.text.count("have a status archiver does not know") == 3  # once a run
    with engine.begin() as conn:  # a day later each is due again; --full refreshes all at once
        conn.execute(job_refresh.update().values(due_at=time.time() - 1))
    fake.jobs[10]["status"] = "succeeded"
    sync(api_for(fake), engine, limit=100, full=True)
    assert_archive_equals(engine, fake.jobs)


def test_a_run_that_could_not_refresh_a_job_exits_5_and_says_which_and_since_when(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = in_flight_deep(300, 250, seed=174)
    broken = fake.jobs[250]["id"]
    # the refreshes are what is tested: no details, and the failing GET's five retries in a moment
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, ARCHIVER_DETAILS="0", ARCHIVER_RETRY_BACKOFF="0.01")
    assert run_cli("sync", env=env).returncode == 0
    fake.get_faults[broken] = deque([error_reply(500, "Something went wrong")] * 6)
    done = run_cli("sync", "--json", env=env)
    assert done.returncode == 5, done.stderr
    report = json.loads(done.stdout)
    assert report["exit_code"] == 5 and report["unrefreshed"][0]["job_id"] == broken
    assert "HTTP 500" in report["unrefreshed"][0]["error"]
    assert done.stderr.strip().splitlines()[-1].startswith("archiver: error: 1 in-flight job could not be")
    status = run_cli("status", env=env)
    assert status.returncode == 1
    assert status.stdout.startswith("PARTIAL: ")
    assert f"job {broken} since 20" in status.stdout and "1 run in a row" in status.stdout
