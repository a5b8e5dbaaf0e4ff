"""Details under faults: retries with back-off, 429s held for every thread, cut-offs, caps, --no-details."""

import json
import re
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from archiver import details
from archiver.client import Settings, make_api
from archiver.detail_models import job_details
from archiver.detail_store import RETRY_BASE
from archiver.details import DetailOptions, DetailsResult
from archiver.errors import Interrupted
from archiver.fake import error_reply
from archiver.fake_details import add_details
from archiver.sync import sync
from tests.conftest import cli_env, run_cli
from tests.details_oracle import assert_details_equal, final_jobs, read_details
from tests.fake_api import AUTH_HEADERS, FakeApi
from tests.test_details import ON, detail_requests, final_fake
from tests.test_sync import api_for


def fetched_jobs(fake: FakeApi) -> set[str]:
    """The jobs whose events the fake was asked for."""
    return {r.path.split("/")[-2] for r in fake.requests if r.path.endswith("/events")}


def detail_rows(engine: sa.Engine) -> dict[str, tuple[Any, ...]]:
    d = job_details.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.job_id, d.state, d.attempts, d.next_try_at - d.fetched_at, d.error))
        return {r[0]: tuple(r[1:]) for r in rows}


def test_a_failed_detail_is_retried_in_later_runs_with_growing_back_off(engine: sa.Engine) -> None:
    fake, metrics = final_fake(8, seed=20)
    job_id = fake.jobs[3]["id"]
    fake.broken[f"/v1/fine_tuning/jobs/{job_id}/checkpoints"] = error_reply(503, "Service Unavailable")
    first = sync(api_for(fake, max_retries=1), engine, details=ON)
    assert first.details is not None and (first.details.done, first.details.retry) == (7, 1)
    state, attempts, wait, error = detail_rows(engine)[job_id]
    assert (state, attempts, wait) == ("retry", 1, RETRY_BASE)
    assert error.endswith("/checkpoints: HTTP 503: Service Unavailable (gave up after 2 attempts)")
    with engine.connect() as conn:
        assert details.status_lines(conn)[0].startswith("details: 1 jobs failed, tried again from ")
        kept = conn.execute(sa.text("SELECT count(*) FROM job_events WHERE job_id = :j"), {"j": job_id})
        assert kept.scalar_one() == 0  # a failed job writes nothing but its files

    fake.requests.clear()
    assert sync(api_for(fake), engine, details=ON).requests == 1  # not due yet

    with engine.begin() as conn:  # time passes
        conn.execute(sa.update(job_details).values(next_try_at=0))
    sync(api_for(fake, max_retries=0), engine, details=ON)
    assert detail_rows(engine)[job_id][:3] == ("retry", 2, 2 * RETRY_BASE)

    with engine.begin() as conn:
        conn.execute(sa.update(job_details).values(next_try_at=0))
    del fake.broken[f"/v1/fine_tuning/jobs/{job_id}/checkpoints"]
    fake.requests.clear()
    sync(api_for(fake), engine, details=ON)
    assert fetched_jobs(fake) == {job_id}
    assert_details_equal(engine, fake, metrics)
    with engine.connect() as conn:
        assert details.status_lines(conn) == []


def test_a_429_holds_back_the_requests_of_every_thread(engine: sa.Engine) -> None:
    fake, metrics = final_fake(40, seed=21)
    fake.faults.extend([None, error_reply(429, "Rate limit reached", **{"retry-after": "7"})])
    sleeps: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:
        sleeps.append((threading.current_thread().name, seconds))

    settings = Settings(base_url="http://fake.test/v1", headers=dict(AUTH_HEADERS))
    api = make_api(settings, transport=httpx.MockTransport(fake), sleep=sleep, clock=lambda: 1000.0)
    sync(api, engine, details=DetailOptions(concurrency=4))
    assert_details_equal(engine, fake, metrics)
    # The clock stands still, so the hold never ends: threads other than the one that got the 429
    # waited out its 7 s before their next requests too. (Requests already under way when it came
    # do not wait, at most two per thread; a thread may also find no job left to take.)
    assert {s for _, s in sleeps} == {7.0}
    assert len({name for name, _ in sleeps}) >= 2
    assert len(sleeps) >= len(fake.requests) - 2 - 2 * 4


def test_a_storm_of_429s_ends_with_every_detail_archived(engine: sa.Engine) -> None:
    fake, metrics = final_fake(20, seed=22)
    fake.fault_rate, fake.fault_kinds = 0.3, ("429",)
    sync(api_for(fake, max_retries=20), engine, details=DetailOptions(concurrency=6))
    assert len(fake.injected) > 20
    assert_details_equal(engine, fake, metrics)


@pytest.mark.parametrize("stop_after", [1, 9])
def test_a_cut_off_backfill_loses_nothing_and_the_next_run_fetches_only_the_rest(
    engine: sa.Engine, stop_after: int
) -> None:
    fake, metrics = final_fake(25, seed=23)
    committed: list[int] = []

    def cut_off(d: DetailsResult) -> None:
        committed.append(d.done)
        if d.done == stop_after:
            raise Interrupted(signal.SIGTERM)

    with pytest.raises(Interrupted):
        sync(api_for(fake), engine, details=DetailOptions(concurrency=3), on_details=cut_off)
    kept = {job_id for job_id, row in detail_rows(engine).items() if row[0] == "done"}
    assert len(kept) == stop_after
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM sync_runs")).scalar_one()
        partly = conn.execute(sa.text("SELECT DISTINCT job_id FROM job_events")).scalars().all()
    assert status == "interrupted"
    assert set(partly) == kept  # no job was written in part
    fake.requests.clear()
    sync(api_for(fake), engine, details=ON)
    assert fetched_jobs(fake) == {j["id"] for j in final_jobs(fake)} - kept
    assert_details_equal(engine, fake, metrics)


def test_no_details_sends_no_detail_request_and_a_later_run_fetches_them(engine: sa.Engine) -> None:
    fake, metrics = final_fake(10, seed=24)
    result = sync(api_for(fake), engine, details=DetailOptions(enabled=False))
    assert detail_requests(fake) == []
    assert result.details == DetailsResult()
    sync(api_for(fake), engine, details=ON)
    assert_details_equal(engine, fake, metrics)


def test_a_capped_run_fetches_that_many_jobs_newest_first_and_says_how_many_are_left(
    engine: sa.Engine,
) -> None:
    fake, metrics = final_fake(10, seed=25)
    result = sync(api_for(fake), engine, details=DetailOptions(max_jobs=4))
    assert result.details is not None and (result.details.done, result.details.left) == (4, 6)
    assert fetched_jobs(fake) == {j["id"] for j in fake.jobs[:4]}
    result = sync(api_for(fake), engine, details=DetailOptions(max_jobs=100))
    assert result.details is not None and (result.details.done, result.details.left) == (6, 0)
    assert_details_equal(engine, fake, metrics)


def test_cli_sync_archives_details_says_so_and_no_details_skips_them(
    db_url: str, fake: FakeApi, base_url: str, tmp_path: Path
) -> None:
    fake.jobs = final_fake(6, seed=26)[0].jobs  # the served fixture's fake, given these jobs
    metrics = add_details(fake, seed=26)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    skipped = run_cli("sync", "--no-details", "--json", env=env)
    assert skipped.returncode == 0, skipped.stderr
    assert detail_requests(fake) == []
    status = run_cli("status", env=env)
    assert "details: 6 final jobs not fetched yet (the next sync fetches them)" in status.stdout
    done = run_cli("sync", "--json", "--details-concurrency=2", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["details"] == {"jobs": 6, "retry": 0, "unsupported": 0, "left": 0}
    assert re.search(r"; the details of 6 jobs in \d+ requests$", done.stderr, re.M)
    from archiver import db

    engine = db.make_engine(db.parse_url(db_url))
    try:
        assert_details_equal(engine, fake, metrics)
        assert read_details(engine)["job_details"] == [
            (j["id"], "done", None) for j in sorted(fake.jobs, key=lambda j: j["id"])
        ]
    finally:
        engine.dispose()
    assert "details:" not in run_cli("status", env=env).stdout
