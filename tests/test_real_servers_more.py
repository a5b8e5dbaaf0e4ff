"""More of issue 16's cases, found by a review: cursor jobs that move, a back-off kept while a
job is listed, purges inside parallel segments, a purged newest job, a refusal asked again a day
later, a failing GET's back-off, signals as a run starts and ends, a tie group cut off."""

import json
import os
import random
import signal
import time
from collections import deque
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import interrupts
from archiver.errors import Interrupted
from archiver.models import job_refresh, jobs, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import assert_archive_equals
from tests.fake_api import FakeApi, error_reply, finish_job
from tests.test_coverage import cut_off, new_final_jobs, settled
from tests.test_real_servers import gap_rows, vanished_ids
from tests.test_sync import api_for


def in_flight(job: dict[str, Any]) -> None:
    job.update(status="running", finished_at=None, fine_tuned_model=None, trained_tokens=None, error=None)


def test_a_paused_job_on_the_first_page_keeps_its_back_off_and_no_op_runs_stay_one_request(
    engine: sa.Engine,
) -> None:
    """A job paused for months on the first page: after the run that sees it once more, it waits
    (job_refresh.due_at) and no-op runs cost one request. But every run that lists it while it is
    not due deletes its job_refresh row ("seen at all"), so the next run finds it due again, calls
    the first page not quiet and asks for a second: 1, 2, 1, 2, ... requests, and the back-off
    never grows."""
    history = settled(300, seed=1605)
    paused = history[3]
    in_flight(paused)
    paused["status"] = "paused"
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=20)
    with engine.begin() as conn:  # months later: unchanged since
        conn.execute(sa.update(jobs).values(last_seen_at=time.time() - 90 * 86400))
    sync(api_for(fake), engine, limit=20)  # sees it once more, then lets it wait
    with engine.connect() as conn:
        due = conn.execute(sa.select(job_refresh.c.due_at)).scalar_one()
    assert due > time.time() + 3600
    assert [sync(api_for(fake), engine, limit=20).requests for _ in range(4)] == [1, 1, 1, 1]
    with engine.connect() as conn:
        assert conn.execute(sa.select(job_refresh.c.due_at)).scalars().all() == [due]


def test_an_in_flight_job_re_stamped_older_with_one_transient_404_is_not_marked_vanished(
    engine: sa.Engine,
) -> None:
    """A job in flight near the head is re-stamped older (it moves 150 places down) and its next
    GET answers 404 once. The head walk stops after its first page, past the job's old place
    without seeing it, so settle() takes the one 404 as confirmed (passed_by) and marks the job
    vanished, though it is listed: the run exits 0, and no later incremental run looks at it again."""
    history = settled(300, seed=1606)
    job = history[2]
    in_flight(job)
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=20)
    fake.jobs.remove(job)
    job["created_at"] = fake.jobs[149]["created_at"] - 1
    fake.jobs.insert(150, job)
    fake.get_faults[job["id"]] = deque([error_reply(404, "No such job")])
    result = sync(api_for(fake), engine, limit=20)
    assert job["id"] not in vanished_ids(engine) or job["id"] in result.unrefreshed


class PurgeAfterServing(FakeApi):
    """Removes `victim` from the listing right after serving a page that ends with it."""

    def __init__(self, history: list[dict[str, Any]], victim: str) -> None:
        super().__init__(history)
        self.victim = victim

    def list_page(self, params: dict[str, str]) -> Any:
        reply = super().list_page(params)
        data = json.loads(reply.body).get("data") or [{}]
        if data[-1].get("id") == self.victim:
            with self.lock:
                self.jobs = [j for j in self.jobs if j["id"] != self.victim]
        return reply


@pytest.mark.parametrize("personality", ["empty", "first", "400"])
def test_a_cursor_purged_inside_a_parallel_segment_is_walked_around_not_taken_for_the_end(
    engine: sa.Engine, personality: str
) -> None:
    """`sync --full --parallel 4` over 400 archived jobs: segment 1 walks jobs 100 to 199. Job 139
    ends one of its pages and is purged as that page is served. Asked for the jobs after it, the
    API answers as it answers an unknown cursor. With an empty last page, the segment takes it
    for the end of the listing: the parallel walk 'walked the whole listing', jobs 140 to 199 are
    marked vanished though listed. Answered with the first page again, the segment walks on from
    the head until its cursor repeats and the run fails ("refusing to loop")."""
    history = settled(400, seed=1607)
    fake = PurgeAfterServing(history, history[139]["id"])
    fake.victim = "none yet"
    sync(api_for(fake), engine, limit=20)
    fake.victim = history[139]["id"]
    fake.unknown_cursor = personality
    victim = history[139]
    result = sync(api_for(fake), engine, limit=20, full=True, parallel=4)
    assert result.unrefreshed == {} and result.partial is None
    assert gap_rows(engine) == []
    assert vanished_ids(engine) == {victim["id"]}
    assert_archive_equals(engine, sorted([*fake.jobs, victim], key=lambda j: -j["created_at"]))


def test_no_op_runs_after_the_newest_job_is_purged_cost_one_request(engine: sa.Engine) -> None:
    """The newest archived job is deleted from the API, and a --full run marks it vanished. Every
    later incremental run still takes it as where the head walk meets the archive (newest_job does
    not skip vanished jobs), misses it on the first page and checks it with a GET: two requests
    per no-op run, forever (until a newer job arrives)."""
    fake = FakeApi(settled(300, seed=1608))
    sync(api_for(fake), engine, limit=20)
    purged = fake.jobs.pop(0)
    sync(api_for(fake), engine, limit=20, full=True, parallel=1)
    assert vanished_ids(engine) == {purged["id"]}
    assert [sync(api_for(fake), engine, limit=20).requests for _ in range(3)] == [1, 1, 1]


class RefusesCursors(FakeApi):
    """A route that answers any `after=` with 400 while `refusing`."""

    refusing = True

    def list_page(self, params: dict[str, str]) -> Any:
        if self.refusing and "after" in params:
            return error_reply(400, "pagination is not supported")
        return super().list_page(params)


def test_a_route_that_refused_once_is_asked_again_a_day_later_though_every_run_needs_two_pages(
    engine: sa.Engine,
) -> None:
    """A route refuses cursors once (the gap is blocked, asked again a day later), then pages
    again. Every hourly run brings 30 new jobs (limit 20), so its head walk needs a second page;
    known to be blocked, it does not ask and blocks its own gap with blocked_at = now, though no
    refusal was seen. A day after the only refusal, the newest blocked gap is always an hour old:
    the route is never asked again, the archive never completes."""
    fake = RefusesCursors(settled(100, seed=1609))
    sync(api_for(fake), engine, limit=20)
    fake.refusing = False  # the gateway is fixed
    for _ in range(26):  # a day of hourly runs
        new_final_jobs(fake, 30, random.Random(len(fake.jobs)))
        sync(api_for(fake), engine, limit=20)
        with engine.begin() as conn:  # an hour passes
            conn.execute(sa.update(sync_gaps).values(blocked_at=sync_gaps.c.blocked_at - 3600))
    result = sync(api_for(fake), engine, limit=20)
    assert result.partial is None and gap_rows(engine) == []
    assert_archive_equals(engine, fake.jobs)


def test_a_run_during_a_failed_jobs_back_off_does_not_exit_0_with_that_job_stale(engine: sa.Engine) -> None:
    """An in-flight job deep in the history: its GET fails (exit 5, retried after a minute). It
    finishes; the next run, within that minute, does not ask for it and returns with `unrefreshed`
    empty (exit 0), while the archive still holds it running."""
    history = settled(600, seed=1610)
    job = history[450]
    in_flight(job)
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=100)
    fake.get_faults[job["id"]] = deque([error_reply(500, "Something went wrong")] * 6)
    assert list(sync(api_for(fake), engine, limit=100).unrefreshed) == [job["id"]]
    finish_job(job)
    result = sync(api_for(fake), engine, limit=100)
    if not result.unrefreshed:  # exit 0: then the archive must equal the listing
        assert_archive_equals(engine, fake.jobs)


def test_a_signal_as_the_run_ends_leaves_it_recorded_not_running(engine: sa.Engine) -> None:
    """SIGTERM arrives as a successful run's end is being written: the run is recorded, never
    left `running`, and the signal is acted on once the record is committed."""
    fake = FakeApi(settled(50, seed=1611))
    sent = []

    def signal_on_the_end(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        # once: the run's chain link (seal_runs) is a second UPDATE whose record says succeeded too
        if statement.startswith("UPDATE sync_runs") and "succeeded" in str(params) and not sent:
            sent.append(signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    sa.event.listen(engine, "before_cursor_execute", signal_on_the_end)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    interrupts.install()
    try:
        with pytest.raises(Interrupted):
            sync(api_for(fake), engine, limit=20)
    finally:
        sa.event.remove(engine, "before_cursor_execute", signal_on_the_end)
        for s, handler in old.items():
            signal.signal(s, handler)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_runs.c.status)).scalars().all() == ["succeeded"]


def test_a_run_cut_off_inside_a_tie_group_does_not_make_the_next_run_walk_the_whole_history(
    engine: sa.Engine,
) -> None:
    """The newest 20 archived jobs share one second; 25 more arrive in it, listed after them (ids
    ascending). A run is cut off after 2 pages: a gap from new tie 19 to the newest archived job
    U, which that run listed (page 1) but no later walk remembers. The next run's gap walk cannot
    prove where U lies (its cursor is in U's second, not before it), GETs U, finds it in place, and
    walks to the end of the history: 15 pages more than needed, with a warning that U is listed
    out of order."""
    fake = FakeApi(settled(300, seed=1612))
    second = fake.jobs[0]["created_at"] + 60

    def tied(first: int, n: int) -> list[dict[str, Any]]:
        jobs = settled(n, seed=1612 + first)
        for k, job in enumerate(jobs):
            job.update(id=f"ftjob-tie{first + k:03d}", created_at=second)
            finish_job(job)
        return jobs

    fake.jobs[:0] = tied(0, 20)
    sync(api_for(fake), engine, limit=20)
    fake.jobs[20:20] = tied(100, 25)
    cut_off(fake, engine, 2, limit=20)
    result = sync(api_for(fake), engine, limit=20)
    assert_archive_equals(engine, fake.jobs)
    assert result.requests <= 4


def test_a_gap_whose_in_flight_cursor_job_is_re_stamped_older_and_refreshed_first_skips_nothing(
    engine: sa.Engine,
) -> None:
    """A first sync is cut off after 3 pages: a gap after job 59 (in flight) to the end. Job 59 is
    then re-stamped to sit 100 places further down. The next run's head walk refreshes job 59 by
    GET (the stop rule's last step) and so stores its new created_at; the gap walk then reads that
    new created_at as the gap's cursor time, finds the job 'in place' and walks on from its new
    place: the 99 jobs between its old and new places are never archived, and no gap is left."""
    history = settled(300, seed=1601)
    in_flight(history[59])
    fake = FakeApi(history)
    cut_off(fake, engine, 3, limit=20)
    assert gap_rows(engine) == [(fake.jobs[59]["id"], None, None)]
    moved = fake.jobs.pop(59)
    moved["created_at"] = fake.jobs[158]["created_at"] - 1
    fake.jobs.insert(159, moved)
    result = sync(api_for(fake), engine, limit=20)
    assert result.unrefreshed == {} and result.partial is None
    assert gap_rows(engine) == []
    assert_archive_equals(engine, fake.jobs)


def test_a_gap_walk_that_lists_another_gaps_cursor_job_at_a_new_place_does_not_carry_it_from_there(
    engine: sa.Engine,
) -> None:
    """Two gaps: (job 59, the end) from a first sync cut off after 3 pages, and (new job 19, job 0)
    from a run cut off after 1 page of 60 new jobs. New job 19 is then re-stamped older, down
    among the old jobs. The walk of the first gap lists it there, carries the second gap along
    from that place and closes it at once (its walk began after a job older than job 0): new jobs
    20 to 59 are never archived, and no gap is left. (This run asks for 10 jobs a page, so that its
    head walk stops at its first page.)"""
    history = settled(300, seed=1602)
    fake = FakeApi(history)
    cut_off(fake, engine, 3, limit=20)
    new = settled(60, seed=1603)
    for k, job in enumerate(new):
        job.update(id=f"ftjob-new{k:03d}", created_at=fake.jobs[0]["created_at"] + 600 * (60 - k))
    fake.jobs[:0] = new
    cut_off(fake, engine, 1, limit=20)
    assert sorted(gap_rows(engine)) == sorted(
        [(history[59]["id"], None, None), (new[19]["id"], history[0]["id"], None)]
    )
    moved = fake.jobs.pop(19)  # new job 19, re-stamped to sit among the old jobs beyond job 59
    at = 60 + 100 - 1
    moved["created_at"] = fake.jobs[at - 1]["created_at"] - 1
    fake.jobs.insert(at, moved)
    result = sync(api_for(fake), engine, limit=10)  # its first page: new jobs 0 to 9, archived
    assert result.unrefreshed == {} and result.partial is None
    assert gap_rows(engine) == []
    assert_archive_equals(engine, fake.jobs)


def test_a_signal_while_the_run_is_being_recorded_leaves_it_interrupted_not_running(
    engine: sa.Engine,
) -> None:
    """SIGTERM arrives as the run's start commits (inside interrupts.deferred()): the run is
    recorded `interrupted`, never left `running`."""
    fake = FakeApi(settled(50, seed=1604))
    sa.event.listen(engine, "commit", lambda _conn: os.kill(os.getpid(), signal.SIGTERM), once=True)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    interrupts.install()
    try:
        with pytest.raises(Interrupted):
            sync(api_for(fake), engine, limit=20)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_runs.c.status)).scalars().all() == ["interrupted"]
