"""`sync --full --parallel N` under what breaks walks: cursors purged at the worst moment, jobs out
of created_at order, non-job items where segments overlap, churn, cut-offs, Bedrock's pages, a
segment failing for good, interrupts; each against the listing or what `--parallel 1` leaves."""

import contextlib
import copy
import logging
import random
import threading
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from archiver import ledger
from archiver.client import Settings, make_api
from archiver.errors import ApiError, AuthError
from archiver.models import CHILD_TABLES, job_history, jobs, rejected_items, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import expected_archive, read_archive
from tests.fake_api import (
    AUTH_HEADERS,
    FakeApi,
    Reply,
    Seen,
    add_new_jobs,
    error_reply,
    finish_job,
    json_reply,
    make_jobs,
)
from tests.test_sync import api_for

LIMIT = 20


def settled(n: int, seed: int) -> list[dict[str, Any]]:
    history = make_jobs(n, seed=seed)
    for job in history:
        finish_job(job)
    return history


def cuts(engine: sa.Engine, parallel: int = 4) -> list[str]:
    with engine.connect() as conn:
        return [job_id for job_id, _ in ledger.spaced_jobs(conn, parallel, LIMIT)]


def state(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            **read_archive(engine),
            "vanished": conn.execute(
                sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None)).order_by(jobs.c.id)
            ).all(),
            "gaps": conn.execute(
                sa.select(sync_gaps.c.after_id, sync_gaps.c.until_id, sync_gaps.c.blocked_reason)
            ).all(),
            "runs": conn.execute(
                sa.select(sync_runs.c.status, sync_runs.c.error).order_by(sync_runs.c.id)
            ).all(),
            "rejected": conn.execute(sa.select(sa.func.count()).select_from(rejected_items)).scalar_one(),
        }


class PurgesACutWhileItIsPaged(FakeApi):
    """The job where segment 1 starts (`cut`) is listed to segment 0 on its last page, then purged
    before segment 1's first request is answered: segment 1 is refused (400) and hands its part to
    segment 0, whose next request, after its own last job `cut`, is refused too."""

    def __init__(self, history: list[dict[str, Any]], cut: str) -> None:
        super().__init__(history)
        self.cut = cut
        self.listed = threading.Event()  # a page holding `cut` was served

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        if params.get("after") == self.cut:
            assert self.listed.wait(10)
            with self.lock:
                self.jobs = [j for j in self.jobs if j["id"] != self.cut]
            return error_reply(400, f"No fine-tuning job found with id {self.cut}")
        reply = super().respond(path, params, headers)
        if self.cut.encode() in reply.body:
            self.listed.set()
        return reply


def test_a_cut_purged_after_the_segment_before_listed_it_is_walked_from_the_head_instead(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    history = settled(400, seed=31)  # 20 pages: 4 segments of 5
    sync(api_for(FakeApi(copy.deepcopy(history))), engine, limit=LIMIT)
    cut = cuts(engine)[0]
    deep = history[150]["id"]  # in segment 1's part (jobs 100..199)
    fake = PurgesACutWhileItIsPaged(copy.deepcopy(history), cut)
    fake.jobs[150]["metadata"] = {"changed": "yes"}  # a final job the API changed: only --full heals it
    with caplog.at_level(logging.INFO, logger="archiver"):
        result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=4)
    assert "the segments did not walk the whole listing: walking it from the head" in caplog.text
    with engine.connect() as conn:
        raw = conn.execute(sa.select(jobs.c.raw).where(jobs.c.id == deep)).scalar_one()
        cut_gone = conn.execute(
            sa.select(jobs.c.vanished_at.is_not(None)).where(jobs.c.id == cut)
        ).scalar_one()
    after = state(engine)
    observed = (after["runs"][-1], after["gaps"], result.partial, raw["metadata"], cut_gone)
    # as --parallel 1 over the same listing: the change healed, the purged job marked vanished
    assert observed == (("succeeded", None), [], None, {"changed": "yes"}, True)


def listed_but_marked_vanished(engine: sa.Engine, fake: FakeApi) -> list[str]:
    listed = {j["id"] for j in fake.jobs}
    with engine.connect() as conn:
        marked = conn.execute(sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None))).scalars()
        return sorted(set(marked) & listed)


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_job_listed_out_of_created_at_order_does_not_stop_a_segment_short(
    engine: sa.Engine, parallel: int
) -> None:
    """created_at 0 (a provider's "unknown") on one job in segment 1's part: a segment ends only at
    its bound's id or at a job a later segment wrote, never on created_at alone."""
    fake = FakeApi(settled(400, seed=32))
    fake.odd[fake.jobs[130]["id"]] = {"created_at": 0}
    sync(api_for(fake), engine, limit=LIMIT)
    fake.jobs[170]["metadata"] = {"changed": "yes"}
    result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(jobs.c.raw).where(jobs.c.id == fake.jobs[170]["id"])).scalar_one()
    observed = (result.vanished, listed_but_marked_vanished(engine, fake)[:3], raw["metadata"])
    assert observed == (0, [], {"changed": "yes"})  # what --parallel 1 leaves


@pytest.mark.parametrize("parallel", [1, 4])
def test_an_item_that_is_not_a_job_where_two_segments_overlap_is_kept_once(
    engine: sa.Engine, parallel: int
) -> None:
    """New jobs at the head shift segment 0's pages: its last one runs past segment 1's start and
    lists what segment 1's first page lists. Jobs and rejected items there are kept once."""
    fake = FakeApi(settled(400, seed=33))
    fake.jobs.insert(100, {"object": "fine_tuning.job", "note": "no id"})  # right after the first cut
    sync(api_for(fake), engine, limit=LIMIT)
    assert cuts(engine)[0] == fake.jobs[99]["id"]
    new = settled(7, seed=34)
    for i, job in enumerate(new):
        job["id"], job["created_at"] = f"ftjob-new{i}", fake.jobs[0]["created_at"] + 10 - i
    fake.jobs[:0] = new
    before = state(engine)["rejected"]
    result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel)
    assert (result.rejected, state(engine)["rejected"] - before) == (1, 1)  # what --parallel 1 leaves


def empty_archive(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (*CHILD_TABLES, job_history, rejected_items, jobs, sync_gaps, sync_runs):
            conn.execute(table.delete())


def check(engine: sa.Engine, fake: FakeApi, gone: set[str], full: bool) -> None:
    listed = {j["id"] for j in fake.jobs}
    actual = read_archive(engine)
    kept = {t: [r for r in rows if r[0] in listed] for t, rows in actual.items()}
    assert kept == expected_archive([fake.served(j) for j in fake.jobs])
    assert {r[0] for r in actual["jobs"]} - listed <= gone
    with engine.connect() as conn:
        marks: dict[str, bool] = dict(
            conn.execute(sa.select(jobs.c.id, jobs.c.vanished_at.is_not(None))).all()
        )
    assert not [i for i in listed if marks.get(i)]
    if full:
        assert all(marks[i] for i in marks.keys() - listed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_parallel_full_run_cut_off_at_any_page_leaves_no_hole(engine: sa.Engine, seed: int) -> None:
    for pages in range(0, 24):
        rng = random.Random(seed * 100 + pages)
        empty_archive(engine)
        fake = FakeApi(make_jobs(300, seed=seed))
        gone: set[str] = set()
        sync(api_for(fake), engine, limit=LIMIT)
        # an earlier cut-off incremental run leaves a gap somewhere
        add_new_jobs(fake.jobs, rng.randrange(1, 50), rng)
        for _ in range(rng.randrange(0, 6)):
            gone.add(fake.jobs.pop(rng.randrange(len(fake.jobs)))["id"])
        fake.outage_after = fake.pages_served + rng.randrange(0, 3)
        with contextlib.suppress(ApiError):
            sync(api_for(fake, max_retries=0), engine, limit=LIMIT, parallel=4)
        add_new_jobs(fake.jobs, rng.randrange(0, 30), rng)
        for _ in range(rng.randrange(0, 6)):
            gone.add(fake.jobs.pop(rng.randrange(len(fake.jobs)))["id"])
        fake.outage_after = fake.pages_served + pages
        with contextlib.suppress(ApiError):
            sync(api_for(fake, max_retries=0), engine, full=True, limit=LIMIT, parallel=4)
        fake.outage_after = None
        add_new_jobs(fake.jobs, rng.randrange(0, 10), rng)
        full = rng.random() < 0.5
        sync(api_for(fake), engine, full=full, limit=LIMIT, parallel=rng.choice([1, 4]))
        check(engine, fake, gone, full)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar_one() == 0


class Churning(FakeApi):
    """Jobs are purged (never the cursor being asked for) and added at the head while the run walks."""

    def __init__(self, history: list[dict[str, Any]], rng: Any, protect: set[str]) -> None:
        super().__init__(history)
        self.rng, self.protect = rng, protect
        self.ever = {j["id"] for j in history}  # every job it listed at some point

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            if path.endswith("/fine_tuning/jobs") and self.rng.random() < 0.5:
                keep = {*self.protect, params.get("after")}
                victims = [j for j in self.jobs if j["id"] not in keep]
                for job in self.rng.sample(victims, min(len(victims), self.rng.randrange(0, 4))):
                    self.jobs.remove(job)
                if self.rng.random() < 0.3:
                    add_new_jobs(self.jobs, self.rng.randrange(1, 5), self.rng)
                    self.ever |= {j["id"] for j in self.jobs}
        return super().respond(path, params, headers)


@pytest.mark.parametrize("seed", range(12))
def test_a_parallel_full_run_under_churn_equals_the_listing(engine: sa.Engine, seed: int) -> None:
    """Jobs purged anywhere (segment starts, bounds, page ends) and added at the head
    while the segments walk. No listed job is marked vanished, no gap is left; a quiet full run
    after it leaves exactly the listing."""
    empty_archive(engine)
    history = make_jobs(400, seed=seed)
    sync(api_for(FakeApi(history)), engine, limit=LIMIT)
    fake = Churning(history, random.Random(seed), set())
    sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=4)
    assert listed_but_marked_vanished(engine, fake) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar_one() == 0
    quiet = FakeApi(fake.jobs)
    sync(api_for(quiet), engine, full=True, limit=LIMIT, parallel=4)
    check(engine, quiet, fake.ever - {j["id"] for j in quiet.jobs}, True)


@pytest.mark.parametrize("seed", range(4))
def test_parallel_full_runs_cut_off_twice_then_an_incremental_run_leave_no_hole(
    engine: sa.Engine, seed: int
) -> None:
    rng = random.Random(seed)
    for trial in range(12):
        empty_archive(engine)
        fake = FakeApi(make_jobs(rng.randrange(100, 400), seed=trial + seed * 50))
        gone: set[str] = set()
        limit = rng.choice([7, 20])
        sync(api_for(fake), engine, limit=limit)
        for _ in range(rng.randrange(1, 4)):
            add_new_jobs(fake.jobs, rng.randrange(0, 40), rng)
            for _ in range(rng.randrange(0, 6)):
                gone.add(fake.jobs.pop(rng.randrange(len(fake.jobs)))["id"])
            fake.outage_after = fake.pages_served + rng.randrange(0, 30)
            full, cut_limit, parallel = rng.random() < 0.8, rng.choice([7, 20]), rng.choice([2, 3, 4, 8])
            with contextlib.suppress(ApiError):
                sync(api_for(fake, max_retries=0), engine, full=full, limit=cut_limit, parallel=parallel)
            fake.outage_after = None
        add_new_jobs(fake.jobs, rng.randrange(0, 10), rng)
        full = rng.random() < 0.5
        sync(api_for(fake), engine, full=full, limit=limit, parallel=rng.choice([1, 4]))
        check(engine, fake, gone, full)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar_one() == 0


class Bedrock(FakeApi):
    """No has_more in the envelope and `after` ignored: every request gets the first page."""

    def list_page(self, params: dict[str, str]) -> Reply:
        limit = int(params.get("limit", 20))
        return json_reply(200, {"object": "list", "data": [self.served(j) for j in self.jobs[:limit]]})


def both(db_url: str, other_db_url: str) -> list[sa.Engine]:
    from archiver import db

    engines = [db.make_engine(db.parse_url(u)) for u in (db_url, other_db_url)]
    for e in engines:
        db.upgrade(e)
    return engines


def comparable(engine: sa.Engine) -> dict[str, Any]:
    s = state(engine)
    with engine.connect() as conn:
        h = job_history.c
        s["history"] = conn.execute(
            sa.select(h.job_id, h.status, h.content_hash).order_by(h.job_id, h.id)
        ).all()
        r = sync_runs.c
        s["counters"] = conn.execute(
            sa.select(
                r.status, r.jobs_seen, r.jobs_inserted, r.jobs_updated, r.jobs_unchanged, r.jobs_rejected
            ).order_by(r.id)
        ).all()
    return s


def test_bedrock_pages_parallel_equals_sequential(db_url: str, other_db_url: str) -> None:
    states = []
    for engine, parallel in zip(both(db_url, other_db_url), (1, 4), strict=True):
        fake = Bedrock(settled(150, seed=40))
        sync(api_for(fake), engine, limit=100)
        with engine.begin() as conn:  # the refusal is older than a day: tried again
            conn.execute(sa.update(sync_gaps).values(blocked_at=1.0))
        fake.jobs[5]["metadata"] = {"changed": "yes"}
        fake.requests.clear()
        sync(api_for(fake), engine, full=True, limit=20, parallel=parallel)
        assert any("after" in r.params for r in fake.list_requests()) == (parallel > 1)
        states.append(comparable(engine))
        engine.dispose()
    assert states[1] == states[0]


class OneFailsOthersRetry(FakeApi):
    """The head is refused for good (401) while the other segments' requests are being retried."""

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append(Seen(path, params, headers))
        if path.endswith("/fine_tuning/jobs") and "after" not in params:
            time.sleep(0.3)
            return error_reply(401, "Invalid API key")
        if path.endswith("/fine_tuning/jobs"):
            return error_reply(503, "Service Unavailable", **{"retry-after": "1"})
        return super().respond(path, params, headers)


def test_a_run_whose_segment_failed_for_good_sends_no_more_retries(engine: sa.Engine) -> None:
    fake = FakeApi(settled(400, seed=41))
    sync(api_for(fake), engine, limit=LIMIT)
    failing = OneFailsOthersRetry(fake.jobs)
    s = Settings(base_url="http://fake.test/v1", headers=dict(AUTH_HEADERS), max_retries=5)
    api = make_api(s, transport=httpx.MockTransport(failing))  # the real sleep between retries
    with pytest.raises(AuthError):
        sync(api, engine, full=True, limit=LIMIT, parallel=4)
    assert state(engine)["runs"][-1][0] == "failed"
    retried = [r for r in failing.list_requests() if "after" in r.params]
    assert len(retried) == 3  # each other segment's first try; none tried again once the run failed


class PurgesOnceAsked(FakeApi):
    """Each job in `purge` leaves the listing right after a page `after` it was served."""

    def __init__(self, history: list[dict[str, Any]], purge: set[str]) -> None:
        super().__init__(history)
        self.purge = purge

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        reply = super().respond(path, params, headers)
        after = params.get("after")
        if after in self.purge:
            with self.lock:
                self.purge.discard(after)
                self.jobs = [j for j in self.jobs if j["id"] != after]
        return reply


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_segment_start_purged_once_its_segment_started_is_passed_by_date(
    engine: sa.Engine, which: int
) -> None:
    fake = FakeApi(settled(400, seed=42))
    sync(api_for(fake), engine, limit=LIMIT)
    cut = cuts(engine)[which]
    purging = PurgesOnceAsked(fake.jobs, {cut})
    purging.jobs[1]["metadata"] = {"changed": "yes"}
    sync(api_for(purging), engine, full=True, limit=LIMIT, parallel=4)
    check(engine, purging, {cut}, True)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar_one() == 0


@pytest.mark.parametrize("seed", range(5))
def test_created_at_ties_across_cut_points(engine: sa.Engine, seed: int) -> None:
    rng = random.Random(seed)
    empty_archive(engine)
    history = settled(400, seed=50 + seed)
    base = history[0]["created_at"]
    step = rng.choice([3, 25, 60])
    for i, job in enumerate(history):
        job["created_at"] = base - i // step  # runs of equal created_at
    for k in range(0, 400, 25):  # the API orders ties its own way
        block = history[k : k + 25]
        if len({j["created_at"] for j in block}) == 1:
            rng.shuffle(block)
            history[k : k + 25] = block
    fake = PurgesOnceAsked(history, set())
    sync(api_for(fake), engine, limit=LIMIT)
    c = cuts(engine)
    fake.purge = set(rng.sample(c, rng.randrange(0, len(c) + 1)))
    gone = set(fake.purge)
    if rng.random() < 0.5:  # some purged before the run
        fake.jobs = [j for j in fake.jobs if j["id"] not in gone]
    fake.jobs[rng.randrange(300)]["metadata"] = {"changed": "yes"}
    sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=4)
    check(engine, fake, gone, True)


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_parallel_walk_is_recorded_and_leaves_no_thread(
    engine: sa.Engine, error: type
) -> None:
    fake = FakeApi(settled(400, seed=43))
    sync(api_for(fake), engine, limit=LIMIT)
    before = threading.active_count()
    pages = []

    def on_page(_result: object) -> None:
        pages.append(1)
        if len(pages) == 7:
            raise error()

    with pytest.raises(error):
        sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=4, on_page=on_page)
    assert threading.active_count() == before
    assert state(engine)["runs"][-1][0] == ("interrupted" if error is KeyboardInterrupt else "failed")
    sync(api_for(fake), engine, limit=LIMIT)
    check(engine, fake, set(), False)


class RefusesOneCursor(FakeApi):
    bad = "-"

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        if params.get("after") == self.bad:
            return error_reply(400, "Invalid page token")
        return super().respond(path, params, headers)


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_full_walk_refused_on_a_later_page_does_not_pass_for_complete(
    engine: sa.Engine, parallel: int
) -> None:
    """A 400 on a cursor past the archive's newest job ends a full walk (or a segment) that holds
    no gap: the run either walks on or says its coverage is partial and keeps a gap for the rest."""
    fake = RefusesOneCursor(settled(400, seed=44))
    sync(api_for(fake), engine, limit=LIMIT)
    fake.bad = fake.jobs[259]["id"]  # a page end in segment 2's part
    fake.jobs[280]["metadata"] = {"changed": "yes"}  # beyond it, in the same segment
    result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(jobs.c.raw).where(jobs.c.id == fake.jobs[280]["id"])).scalar_one()
    s = state(engine)
    healed = raw["metadata"] == {"changed": "yes"}
    # either the walk got there, or the run says its coverage is partial and keeps a gap for it
    assert healed or (result.partial is not None and s["gaps"] != []), (s["runs"][-1], s["gaps"])


@pytest.mark.parametrize("parallel", [1, 4])
def test_full_runs_refused_again_and_again_keep_one_gap_for_the_rest(
    engine: sa.Engine, parallel: int
) -> None:
    """A provider that refuses every cursor (Vertex AI through the gateway), new jobs between runs:
    each --full run says its coverage is partial, with one gap for the rest, not one more per run."""
    fake = RefusesOneCursor(settled(400, seed=45))
    sync(api_for(fake), engine, limit=LIMIT)
    rng = random.Random(45)
    for _ in range(3):
        add_new_jobs(fake.jobs, 5, rng)  # within the first page: the head walk meets the archive
        fake.bad = fake.jobs[LIMIT - 1]["id"]  # the first page's last job: no page beyond it
        result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel)
        assert result.partial is not None
        with engine.begin() as conn:  # the refusal is older than a day: tried again
            conn.execute(sa.update(sync_gaps).values(blocked_at=1.0))
    gaps = state(engine)["gaps"]
    assert [(after, until) for after, until, _ in gaps] == [(fake.bad, None)]


def test_an_api_that_a_failed_run_stopped_serves_the_next_run(engine: sa.Engine) -> None:
    fake = FakeApi(settled(50, seed=46))
    api = api_for(fake, max_retries=0)
    fake.faults.append(error_reply(500, "Internal server error"))
    with pytest.raises(ApiError):
        sync(api, engine, limit=LIMIT)
    assert sync(api, engine, limit=LIMIT).seen == 50
