"""A full walk keeps what it has listed in run_listings, not in memory (issue 21): each page's ids
commit with the page, the run's end deletes them, and the next run deletes what a killed one left;
what a route's full walk did not list leaves that route, vanished only if no other route lists it."""

import time
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import ledger, listings
from archiver.models import job_routes, jobs, run_listings, sync_runs
from archiver.result import SyncResult
from archiver.sync import sync
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for

LIMIT = 20


def noted(engine: sa.Engine) -> list[tuple[Any, ...]]:
    r = run_listings.c
    with engine.connect() as conn:
        return [
            tuple(row) for row in conn.execute(sa.select(r.sync_run_id, r.job_id, r.walk).order_by(r.job_id))
        ]


def vanished(engine: sa.Engine) -> list[str]:
    query = sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None)).order_by(jobs.c.id)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_full_walk_notes_each_page_as_it_commits_and_forgets_them_at_its_end(
    engine: sa.Engine, parallel: int
) -> None:
    fake = FakeApi(make_jobs(95, seed=2))
    during: list[list[tuple[Any, ...]]] = []
    sync(api_for(fake), engine, limit=LIMIT, on_page=lambda _: during.append(noted(engine)))
    assert during and all(rows == [] for rows in during)  # a first sync has nothing to mark vanished
    gone = sorted(j["id"] for j in fake.jobs[10:13])
    fake.jobs = [j for j in fake.jobs if j["id"] not in gone]
    during.clear()

    def on_page(result: SyncResult) -> None:
        during.append(noted(engine))

    result = sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel, on_page=on_page)
    listed = sorted(j["id"] for j in fake.jobs)
    assert [len(rows) for rows in during] == sorted(len(rows) for rows in during)  # pages add up
    assert {row[0] for rows in during for row in rows} == {result.run_id}
    walks = {row[2] for row in during[-1]}
    assert walks == ({listings.HEAD} if parallel == 1 else set(range(len(walks))))
    assert [row[1] for row in during[-1]] == listed  # every listed job once, written by one walk
    assert noted(engine) == []
    assert vanished(engine) == gone
    assert result.vanished == len(gone)


def test_the_next_run_deletes_what_a_killed_run_noted(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(30, seed=4))
    sync(api_for(fake), engine, limit=LIMIT)
    with engine.begin() as conn:  # a run killed in the middle of a full walk
        killed = ledger.start_run(conn, "full", "http://fake.test/v1", time.time())
        listings.note(conn, killed, listings.HEAD, [j["id"] for j in fake.jobs[:LIMIT]])
    assert len(noted(engine)) == LIMIT
    sync(api_for(fake), engine, limit=LIMIT)
    assert noted(engine) == []
    with engine.connect() as conn:
        status = conn.execute(sa.select(sync_runs.c.status).where(sync_runs.c.id == killed)).scalar_one()
    assert status == "abandoned"
    assert vanished(engine) == []


def test_forgetting_a_run_in_chunks_deletes_all_it_noted_and_nothing_of_another_run(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite forget deletes a chunk at a time (FORGET_CHUNK rows, here 7): every row of the
    run goes, however many chunks it takes, and another run's rows stay; then forget() empties all."""
    monkeypatch.setattr(listings, "FORGET_CHUNK", 7)
    with engine.begin() as conn:
        one, two = (ledger.start_run(conn, "full", "http://fake.test/v1", time.time()) for _ in range(2))
        listings.note(conn, one, listings.HEAD, [f"ftjob-{i:03}" for i in range(50)])
        listings.note(conn, two, 0, [f"ftjob-{i:03}" for i in range(3)])
        listings.forget(conn, one)
    assert noted(engine) == [(two, f"ftjob-{i:03}", 0) for i in range(3)]
    with engine.begin() as conn:
        listings.note(conn, one, 1, [f"ftjob-{i:03}" for i in range(30)])
        listings.forget(conn)
    assert noted(engine) == []


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_full_walk_cut_off_forgets_what_it_listed_and_marks_nothing_vanished(
    engine: sa.Engine, parallel: int
) -> None:
    fake = FakeApi(make_jobs(95, seed=6))
    sync(api_for(fake), engine, limit=LIMIT)
    fake.jobs = fake.jobs[:60]  # 35 gone, but the walk never reaches the end
    fake.outage_after = fake.pages_served + 2
    with pytest.raises(Exception, match="503"):
        sync(api_for(fake), engine, full=True, limit=LIMIT, parallel=parallel)
    assert noted(engine) == []
    assert vanished(engine) == []


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_full_walk_of_one_route_lets_go_of_what_it_no_longer_lists_and_vanishes_only_the_unrouted(
    engine: sa.Engine, parallel: int
) -> None:
    everything = make_jobs(95, seed=8)
    fakes = {"a": FakeApi(list(everything)), "b": FakeApi(everything[::2])}  # b lists every other job
    for route, fake in fakes.items():
        sync(api_for(fake), engine, limit=LIMIT, route=route)
    shared, own = everything[40], everything[41]  # listed by both routes; by route a alone
    fakes["a"].jobs = [j for j in fakes["a"].jobs if j not in (shared, own)]
    result = sync(api_for(fakes["a"]), engine, full=True, limit=LIMIT, parallel=parallel, route="a")
    assert noted(engine) == []
    assert vanished(engine) == [own["id"]]
    assert result.vanished == 1
    r = job_routes.c
    with engine.connect() as conn:
        routed = set(conn.execute(sa.select(r.route, r.job_id)).all())
    expected = {("a", j["id"]) for j in everything if j is not shared} | {
        ("b", j["id"]) for j in fakes["b"].jobs
    }
    assert routed == expected  # the vanished job keeps its route, as ledger.let_go leaves it
