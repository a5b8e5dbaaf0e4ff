"""Completeness under cut-off runs, vanished jobs and wrongly typed fields (issue 9's reproductions)."""

import random
import time

import pytest
import sqlalchemy as sa

from archiver.errors import ApiError
from archiver.models import jobs, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import assert_archive_equals, cli_env, run_cli
from tests.fake_api import FakeApi, add_new_jobs, finish_job, make_jobs
from tests.test_sync import api_for


def settled(n: int, seed: int) -> list[dict]:
    history = make_jobs(n, seed=seed)
    for job in history[:5]:
        finish_job(job)
    return history


def new_final_jobs(fake: FakeApi, n: int, rng: random.Random) -> None:
    """Jobs that arrive already final: nothing in flight forces a deep walk."""
    add_new_jobs(fake.jobs, n, rng)
    for job in fake.jobs[:n]:
        finish_job(job, rng.choice(["succeeded", "failed", "cancelled"]))


def cut_off(fake: FakeApi, engine: sa.Engine, pages: int, **kw: object) -> None:
    """A run that loses the network after `pages` more list pages."""
    fake.outage_after = fake.pages_served + pages
    try:
        with pytest.raises(ApiError):
            sync(api_for(fake, max_retries=0), engine, **kw)  # type: ignore[arg-type]
    finally:
        fake.outage_after = None


def open_gaps(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(sync_gaps)).scalar_one()


def test_two_cut_off_incremental_runs_in_a_row_leave_no_hole(engine: sa.Engine) -> None:
    rng = random.Random(90)
    fake = FakeApi(settled(500, seed=90))
    sync(api_for(fake), engine, limit=7)
    new_final_jobs(fake, 8, rng)
    cut_off(fake, engine, 1, limit=7)
    new_final_jobs(fake, 7, rng)
    cut_off(fake, engine, 1, limit=7)
    assert open_gaps(engine) == 2  # one per cut-off head walk
    for _ in range(3):
        sync(api_for(fake), engine, limit=7)
        assert_archive_equals(engine, fake.jobs)
    assert open_gaps(engine) == 0


def test_a_full_run_cut_off_among_new_jobs_leaves_no_hole(engine: sa.Engine) -> None:
    rng = random.Random(91)
    fake = FakeApi(settled(300, seed=91))
    sync(api_for(fake), engine, limit=7)
    new_final_jobs(fake, 12, rng)
    cut_off(fake, engine, 1, full=True, limit=7)
    assert open_gaps(engine) == 1
    sync(api_for(fake), engine, limit=7)
    assert_archive_equals(engine, fake.jobs)
    assert open_gaps(engine) == 0


def vanished(engine: sa.Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(jobs.c.id, jobs.c.vanished_at.is_not(None))).all())


def test_an_in_flight_job_deep_in_the_history_that_vanishes_is_kept_marked_once_confirmed_and_let_go(
    engine: sa.Engine,
) -> None:
    history = settled(600, seed=92)
    deep = history[450]
    deep.update(status="running", finished_at=None, fine_tuned_model=None, trained_tokens=None, error=None)
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=100)
    fake.jobs.remove(deep)  # purged by the provider
    for vanished_now in (0, 1):  # one 404 is not believed; the next run's confirms it
        fake.requests.clear()
        result = sync(api_for(fake), engine, limit=100)
        # One page (nothing new), then the GET of the straggler: 404.
        assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["jobs", deep["id"]]
        assert (result.requests, result.vanished) == (2, vanished_now)
    assert_archive_equals(engine, [*fake.jobs, deep])  # an audit archive never forgets
    assert [job_id for job_id, gone in vanished(engine).items() if gone] == [deep["id"]]
    fake.requests.clear()
    assert sync(api_for(fake), engine, limit=100).requests == 1  # no longer refreshed
    sync(api_for(fake), engine, full=True, limit=100)
    assert [job_id for job_id, gone in vanished(engine).items() if gone] == [deep["id"]]


def test_a_vanished_in_flight_job_near_the_head_does_not_make_runs_walk_the_history(
    engine: sa.Engine,
) -> None:
    history = settled(2000, seed=93)
    history[3].update(
        status="queued", finished_at=None, fine_tuned_model=None, trained_tokens=None, error=None
    )
    fake = FakeApi(history)
    sync(api_for(fake), engine, limit=100)
    gone = fake.jobs.pop(3)
    # The page, then its GET twice (a 404, and a second one: the walk passed its place): vanished.
    for requests in (3, 1):
        fake.requests.clear()
        assert sync(api_for(fake), engine, limit=100).requests == requests
    assert vanished(engine)[gone["id"]] is True


def test_a_job_missing_from_a_full_walk_is_marked_vanished_and_unmarked_if_it_returns(
    engine: sa.Engine,
) -> None:
    fake = FakeApi(settled(120, seed=94))
    sync(api_for(fake), engine, limit=50)
    gone = fake.jobs.pop(70)
    sync(api_for(fake), engine, full=True, limit=50)
    assert [job_id for job_id, v in vanished(engine).items() if v] == [gone["id"]]
    fake.jobs.insert(70, gone)
    sync(api_for(fake), engine, full=True, limit=50)
    assert not any(vanished(engine).values())


@pytest.mark.parametrize(
    "odd",
    [
        {"status": ["running"]},
        {"status": {"state": "running"}},
        {"method": {"type": "supervised", "supervised": ["not", "an", "object"]}},
        {"method": "supervised", "hyperparameters": [1, 2]},
        {"integrations": {"type": "wandb"}, "error": "boom", "created_at": [1]},
    ],
)
def test_a_wrongly_typed_field_never_crashes_a_run_and_a_later_good_copy_heals_it(
    engine: sa.Engine, odd: dict
) -> None:
    fake = FakeApi(settled(60, seed=95))
    good = dict(fake.jobs[10])
    fake.jobs[10] = {**good, **odd}
    first = sync(api_for(fake), engine, limit=20)
    assert first.inserted == 60
    sync(api_for(fake), engine, limit=20)  # and every later run too
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_runs.c.status)).scalars().all() == ["succeeded", "succeeded"]
        raw = conn.execute(sa.select(jobs.c.raw).where(jobs.c.id == good["id"])).scalar_one()
    assert raw == fake.jobs[10]  # kept whole
    fake.jobs[10] = good
    sync(api_for(fake), engine, full=True, limit=20)
    assert_archive_equals(engine, fake.jobs)


def test_any_exception_is_recorded_as_a_failed_run_before_it_propagates(engine: sa.Engine) -> None:
    def broken(_result: object) -> None:
        raise RuntimeError("a bug in the progress display")

    with pytest.raises(RuntimeError):
        sync(api_for(FakeApi(make_jobs(30))), engine, on_page=broken)
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.error, sync_runs.c.finished_at)).one()
    assert row[:2] == ("failed", "RuntimeError: a bug in the progress display")
    assert row[2] is not None


def test_a_run_left_running_is_abandoned_by_the_next_and_status_calls_it_unhealthy(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(40)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    assert run_cli("sync", env=env).returncode == 0
    from archiver import db

    engine = db.make_engine(db.parse_url(db_url))
    with engine.begin() as conn:  # as kill -9 leaves it: no end recorded, no lock held
        conn.execute(
            sa.insert(sync_runs).values(started_at=time.time(), status="running", mode="incremental")
        )
    status = run_cli("status", "--max-age", "1h", env=env)
    assert status.returncode == 1
    assert "no sync holds the lock" in status.stdout
    assert run_cli("sync", env=env).returncode == 0
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(sync_runs.c.status).order_by(sync_runs.c.id)).scalars().all()
    assert statuses == ["succeeded", "abandoned", "succeeded"]
    assert run_cli("status", "--max-age", "1h", env=env).returncode == 0
    engine.dispose()
