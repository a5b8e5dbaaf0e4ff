"""Review of issue 16: sequences after which a sync returns normally but the archive is wrong."""

import os
import signal
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import interrupts
from archiver.errors import Interrupted
from archiver.models import sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import assert_archive_equals
from tests.fake_api import FakeApi
from tests.test_coverage import cut_off, settled
from tests.test_sync import api_for


def gap_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        g = sync_gaps.c
        return [tuple(r) for r in conn.execute(sa.select(g.after_id, g.until_id, g.blocked_reason))]


def in_flight(job: dict[str, Any]) -> None:
    job.update(status="running", finished_at=None, fine_tuned_model=None, trained_tokens=None, error=None)


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
