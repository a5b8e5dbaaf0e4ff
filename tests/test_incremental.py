"""Incremental sync: what it costs, that it equals a full sync, and resuming an interrupted walk."""

import random

import pytest
import sqlalchemy as sa

from archiver.errors import ApiError
from archiver.models import job_history, sync_gaps
from archiver.sync import sync
from tests.conftest import assert_archive_equals, count_rows, read_archive
from tests.fake_api import FakeApi, add_new_jobs, finish_job, make_jobs
from tests.test_sync import api_for


def settled(n: int, seed: int) -> list[dict]:
    """A history with nothing in flight."""
    jobs = make_jobs(n, seed=seed)
    for job in jobs[:5]:
        finish_job(job)
    return jobs


def gaps(engine: sa.Engine) -> list[tuple[str | None, str | None]]:
    """The open gaps: (resume after, ends at)."""
    with engine.connect() as conn:
        query = sa.select(sync_gaps.c.after_id, sync_gaps.c.until_id).order_by(sync_gaps.c.id)
        return [tuple(row) for row in conn.execute(query)]


def test_noop_incremental_sync_makes_one_request_and_writes_nothing(engine: sa.Engine) -> None:
    fake = FakeApi(settled(2500, seed=20))
    sync(api_for(fake), engine)
    before = read_archive(engine)
    fake.requests.clear()
    result = sync(api_for(fake), engine)
    assert (result.requests, result.pages, result.inserted, result.updated) == (1, 1, 0, 0)
    assert len(fake.requests) == 1
    assert read_archive(engine) == before
    assert count_rows(engine, "job_history") == 2500


def test_incremental_equals_full_after_new_jobs_and_in_flight_changes(engine: sa.Engine) -> None:
    rng = random.Random(21)
    jobs = make_jobs(2500, seed=21)  # the 5 newest are in flight
    for deep in (150, 400):  # two stragglers deep in the history
        jobs[deep].update(
            status="running",
            finished_at=None,
            fine_tuned_model=None,
            trained_tokens=None,
            result_files=[],
            error=None,
            estimated_finish=jobs[deep]["created_at"] + 99,
        )
    fake = FakeApi(jobs)
    sync(api_for(fake), engine)
    in_flight = [j["id"] for j in jobs[:5]] + [jobs[150]["id"], jobs[400]["id"]]
    for job in [*jobs[:5], jobs[150], jobs[400]]:
        finish_job(job, rng.choice(["succeeded", "failed", "cancelled"]))
    add_new_jobs(fake.jobs, 37, rng)
    fake.requests.clear()

    result = sync(api_for(fake), engine, limit=100)

    # Page 1: 37 new jobs and the 5 formerly in flight. Page 2 holds the straggler now 187 deep,
    # which changed, so the first page of archived, unchanged, final jobs is page 3. The straggler
    # 437 deep is then fetched by id: 1 request against 2 more pages.
    assert [r.params.get("after") for r in fake.requests[:3]] == [
        None,
        fake.jobs[99]["id"],
        fake.jobs[199]["id"],
    ]
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests[3:]] == [jobs[400]["id"]]
    assert result.requests == 4
    assert_archive_equals(engine, fake.jobs)
    with engine.connect() as conn:
        versions = dict(
            conn.execute(
                sa.select(job_history.c.job_id, sa.func.count()).group_by(job_history.c.job_id)
            ).all()
        )
    assert {job_id: versions[job_id] for job_id in in_flight} == dict.fromkeys(in_flight, 2)
    assert sum(versions.values()) == 2537 + len(in_flight)


def test_many_stragglers_are_reached_by_paging_not_fetching(engine: sa.Engine) -> None:
    jobs = settled(600, seed=22)
    for job in jobs[100:130]:  # 30 in flight on pages 2 and 3: paging (1 more page) is cheaper
        job.update(
            status="queued",
            finished_at=None,
            fine_tuned_model=None,
            trained_tokens=None,
            result_files=[],
            error=None,
        )
    fake = FakeApi(jobs)
    sync(api_for(fake), engine, limit=100)
    for job in jobs[100:130]:
        finish_job(job)
    fake.requests.clear()
    result = sync(api_for(fake), engine, limit=100)
    assert result.requests == 2
    assert all(r.path.endswith("/fine_tuning/jobs") for r in fake.requests)
    assert_archive_equals(engine, fake.jobs)


def test_an_interrupted_first_sync_resumes_from_its_checkpoint(engine: sa.Engine) -> None:
    rng = random.Random(23)
    fake = FakeApi(make_jobs(2500, seed=23))
    fake.outage_after = 10
    with pytest.raises(ApiError, match="HTTP 503"):
        sync(api_for(fake, max_retries=2), engine, limit=100)
    assert count_rows(engine, "jobs") == 1000
    assert gaps(engine) == [(fake.jobs[999]["id"], None)]
    assert_archive_equals(engine, fake.jobs[:1000])

    fake.outage_after = None
    add_new_jobs(fake.jobs, 5, rng)
    finish_job(fake.jobs[5])  # one of the in-flight jobs moved on meanwhile
    fake.requests.clear()
    result = sync(api_for(fake), engine, limit=100)

    afters = [r.params.get("after") for r in fake.list_requests()]
    # The head (new and in-flight jobs) first, then straight on from the checkpoint to the end,
    # once one GET has shown that the checkpoint's job is still where it was.
    assert afters[:2] == [None, fake.jobs[99]["id"]]
    assert afters[2] == fake.jobs[1004]["id"]
    assert len(afters) == 2 + 15
    gets = [r.path.rsplit("/", 1)[-1] for r in fake.requests if r not in fake.list_requests()]
    assert gets == [fake.jobs[1004]["id"]]
    assert result.requests == 18
    assert_archive_equals(engine, fake.jobs)
    assert gaps(engine) == []


def test_a_checkpoint_the_api_rejects_falls_back_to_a_full_walk(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(300, seed=24))
    fake.outage_after = 1
    with pytest.raises(ApiError):
        sync(api_for(fake, max_retries=0), engine, limit=100)
    lost = fake.jobs.pop(99)  # the API no longer knows the checkpoint's job
    fake.outage_after = None
    sync(api_for(fake), engine, limit=100)
    assert_archive_equals(engine, [lost, *fake.jobs])  # nothing archived is ever deleted
    assert gaps(engine) == []


def test_jobs_out_of_order_turn_the_run_into_a_full_walk(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = settled(500, seed=25)
    fake = FakeApi(jobs)
    sync(api_for(fake), engine, limit=100)
    fake.jobs[450], fake.jobs[20] = fake.jobs[20], fake.jobs[450]  # created_at now increases on page 1
    fake.jobs[350]["user_provided_suffix"] = "changed"  # only a walk to the end sees this
    fake.requests.clear()
    sync(api_for(fake), engine, limit=100)
    assert len(fake.requests) == 5
    assert "does not list jobs newest first" in caplog.text
    assert_archive_equals(engine, fake.jobs)


def test_an_incremental_run_cut_off_among_new_jobs_leaves_no_hole(engine: sa.Engine) -> None:
    """Found by the state machine: new jobs archived from the head, the run cut off before the older
    new ones; the next run must not stop at the first page of known jobs."""
    rng = random.Random(26)
    fake = FakeApi(settled(30, seed=26))
    sync(api_for(fake), engine, limit=7)
    add_new_jobs(fake.jobs, 8, rng)
    for job in fake.jobs[:8]:
        finish_job(job)
    fake.outage_after = fake.pages_served + 1
    with pytest.raises(ApiError):
        sync(api_for(fake, max_retries=0), engine, limit=7)
    assert gaps(engine) == [(fake.jobs[6]["id"], fake.jobs[8]["id"])]  # the gap is marked
    fake.outage_after = None
    fake.requests.clear()
    sync(api_for(fake), engine, limit=7)
    assert_archive_equals(engine, fake.jobs)
    assert gaps(engine) == []
    # Page 1 is known and final: the head walk stops; the gap walk's first page reaches its end.
    assert [r.params.get("after") for r in fake.requests] == [None, fake.jobs[6]["id"]]


def test_a_corrupt_checkpoint_falls_back_to_a_full_walk_and_deletes_nothing(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(250, seed=27))
    sync(api_for(fake), engine, limit=100)
    with engine.begin() as conn:  # as if the gap's cursor had been damaged
        conn.execute(sync_gaps.insert().values(after_id="ftjob-\x7fgarbage", until_id=None, opened_at=0))
    fake.jobs.insert(
        0, {**fake.jobs[0], "id": "ftjob-brand-new", "created_at": fake.jobs[0]["created_at"] + 1}
    )
    fake.requests.clear()
    sync(api_for(fake), engine, limit=100)
    assert_archive_equals(engine, fake.jobs)
    assert gaps(engine) == []
    assert fake.requests[-4].path.endswith("/ftjob-%7Fgarbage")  # its GET: 404, so never a cursor
    assert [r.params.get("after") for r in fake.requests][-3:] == [
        None,
        fake.jobs[99]["id"],
        fake.jobs[199]["id"],
    ]
