"""Every migration down and up again on a populated archive keeps its rows and their links."""

import random
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from archiver import db
from archiver.errors import DatabaseError
from archiver.sync import sync
from tests.fake_api import FakeApi, add_new_jobs, finish_job, make_jobs
from tests.test_sync import api_for

KEPT = {"jobs": "id", "job_history": "id", "sync_runs": "id"}


def revisions() -> list[str]:
    """Oldest first, read from migrations/versions, so that new revisions are covered too."""
    script = ScriptDirectory(str(db.resource_path("migrations")))
    return [s.revision for s in script.walk_revisions()][::-1]


def rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            name: [dict(r._mapping) for r in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY {key}")]
            for name, key in KEPT.items()
        }


def same_columns(now: dict[str, list[dict[str, Any]]], then: dict[str, list[dict[str, Any]]]) -> Any:
    """`then` cut down to the columns that exist `now` (a downgrade may drop a column)."""
    return {
        name: [{k: row[k] for k in (now[name][0] if now[name] else row)} for row in then[name]]
        for name in then
    }


def test_every_migration_down_and_up_keeps_the_rows_and_their_links(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(60, seed=90))
    sync(api_for(fake), engine)
    for job in fake.jobs[:5]:
        finish_job(job)
    add_new_jobs(fake.jobs, 10, random.Random(90))
    sync(api_for(fake), engine)
    sync(api_for(fake), engine, full=True)
    at_head = rows(engine)
    assert {r["sync_run_id"] for r in at_head["job_history"]} == {1, 2}
    assert {r["last_sync_run_id"] for r in at_head["jobs"]} == {1, 2}
    assert len(at_head["sync_runs"]) == 3

    revs = revisions()
    assert revs[-1] == db.head()
    for i in range(len(revs) - 1, 0, -1):  # down one at a time, to the first revision (base drops all)
        db.downgrade(engine, revs[i - 1])
        now = rows(engine)
        assert now == same_columns(now, at_head), f"after downgrading to {revs[i - 1]}"
    for rev in revs[1:]:
        db.upgrade(engine, rev)
        now = rows(engine)
        assert now == same_columns(now, at_head), f"after upgrading to {rev}"
    assert rows(engine) == at_head


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_migration_that_breaks_a_foreign_key_is_rolled_back(engine: sa.Engine) -> None:
    sync(api_for(FakeApi(make_jobs(5, seed=91))), engine)
    before = rows(engine)
    refused = pytest.raises(DatabaseError, match=r"rolled back: 10 rows would reference missing rows \(first")
    with refused, db.migrating(engine) as conn:
        conn.exec_driver_sql("DELETE FROM sync_runs")  # as a faulty migration might (5 jobs, 5 history rows)
    assert rows(engine) == before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # restored on the pooled connection
