"""Every migration down and up again on a populated archive keeps its rows and their links; 0005's data."""

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from archiver import chain, db, reports
from archiver.canonical import flat_canonical_json
from archiver.errors import DatabaseError
from archiver.store import content_hash
from archiver.sync import sync
from tests.fake_api import FakeApi, add_new_jobs, finish_job, make_jobs
from tests.test_sync import api_for

KEPT = {"jobs": "id", "job_history": "id", "sync_runs": "id"}


def revisions() -> list[str]:
    """Oldest first, read from migrations/versions, so that new revisions are covered too."""
    script = ScriptDirectory(str(db.resource_path("migrations")))
    return [s.revision for s in script.walk_revisions()][::-1]


def rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """The kept tables' rows, each history row with its JSON (from 0016 on, a job's newest row
    holds none: its job's raw is its JSON)."""
    with engine.connect() as conn:
        found = {
            name: [dict(r._mapping) for r in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY {key}")]
            for name, key in KEPT.items()
        }
    current = {job["id"]: job["raw"] for job in found["jobs"]}
    for row in found["job_history"]:
        row["raw"] = current[row["job_id"]] if row["raw"] is None else row["raw"]
    return found


def raw_held(engine: sa.Engine) -> dict[int, bool]:
    """job_history.id -> whether the row holds its JSON itself."""
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT id, raw IS NOT NULL FROM job_history").all())  # type: ignore[arg-type]


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

    newest = {r["job_id"]: r["id"] for r in at_head["job_history"]}  # in id order: the last wins
    assert raw_held(engine) == {r["id"]: r["id"] != newest[r["job_id"]] for r in at_head["job_history"]}

    revs = revisions()
    assert revs[-1] == db.head()
    schemas = {revs[-1]: schema(engine)}
    for i in range(len(revs) - 1, 0, -1):  # down one at a time, to the first revision (base drops all)
        db.downgrade(engine, revs[i - 1])
        now = rows(engine)
        assert now == same_columns(now, at_head), f"after downgrading to {revs[i - 1]}"
        assert all(raw_held(engine).values()), f"every history row holds its JSON at {revs[i - 1]}"
        schemas[revs[i - 1]] = schema(engine)
    assert "run_listings" not in schemas["0012"] and "run_listings" in schemas["0013"]
    assert schemas["0012"]["jobs"] - schemas["0013"]["jobs"] == {"ix_jobs_created_at", "ix_jobs_status_class"}
    assert schemas["0013"]["jobs"] - schemas["0012"]["jobs"] == {
        "ix_jobs_reports",
        "ix_jobs_hyperparameters",
        "ix_jobs_status_class_vanished_at_id",
    }
    assert schemas["0013"]["jobs"] ^ schemas["0014"]["jobs"] == {
        "ix_jobs_hyperparameters",
        "ix_jobs_hyperparameter_groups",
        "ix_jobs_durations",
    }
    for row in at_head["job_history"]:  # below 0008 nothing holds the route: it comes back unknown
        row["observed_via"] = None
    at_head = unchained(at_head)  # so the chain rebuilt by 0011 records it so: see the test below
    for rev in revs[1:]:
        db.upgrade(engine, rev)
        now = unchained(rows(engine))
        assert now == same_columns(now, at_head), f"after upgrading to {rev}"
        assert schema(engine) == schemas[rev], f"the tables and indexes after upgrading to {rev}"
    assert unchained(rows(engine)) == at_head
    assert raw_held(engine) == {r["id"]: r["id"] != newest[r["job_id"]] for r in at_head["job_history"]}


def schema(engine: sa.Engine) -> dict[str, set[str]]:
    """Each table's indexes by name: a revision upgraded to again has those it had. Read from the
    catalogue: SQLAlchemy's reflection skips (and warns of) an index on an expression."""
    indexes = {
        "sqlite": "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'",
        "postgresql": "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()",
    }[engine.dialect.name]
    with engine.connect() as conn:
        found = {t: set[str]() for t in sa.inspect(conn).get_table_names()}
        for table, name in conn.execute(sa.text(indexes)):
            found[table].add(name)
    return found


def unchained(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [{k: v for k, v in r.items() if k not in CHAIN} for r in rs] for name, rs in tables.items()}


CHAIN = ("seq", "record", "hash")


def test_redoing_0011_rebuilds_the_chain_the_runs_wrote(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(60, seed=92))
    sync(api_for(fake), engine)
    for job in fake.jobs[:5]:
        finish_job(job)
    add_new_jobs(fake.jobs, 10, random.Random(92))
    sync(api_for(fake), engine)
    sync(api_for(fake), engine, full=True)
    written = rows(engine)
    assert [r["seq"] for r in written["sync_runs"]] == [61, 77, 78]  # each run's history, then its row
    db.downgrade(engine, "0010")
    db.upgrade(engine, "0011")
    at_0011 = rows(engine)
    undigested = without_digests(written)  # 0011 records no typed_sha256: it has no rows as written
    assert at_0011 == same_columns(at_0011, undigested)  # the runs' records leave out the route default
    db.upgrade(engine, db.head())
    assert rows(engine) == undigested


def without_digests(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The rows with the chain linked again over them, its records without typed_sha256."""
    tables = {name: [dict(r) for r in rs] for name, rs in tables.items()}
    prev = chain.GENESIS
    for row in sorted((r for rs in tables.values() for r in rs if r.get("seq")), key=lambda r: r["seq"]):
        said = {k: v for k, v in json.loads(row["record"]).items() if k != "typed_sha256"}
        row["record"] = flat_canonical_json(said | {"prev": prev})
        row["hash"] = prev = chain.sha256(row["record"])
    return tables


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_migration_that_breaks_a_foreign_key_is_rolled_back(engine: sa.Engine) -> None:
    sync(api_for(FakeApi(make_jobs(5, seed=91))), engine)
    before = rows(engine)
    refused = pytest.raises(DatabaseError, match=r"rolled back: 20 rows would reference missing rows \(first")
    with refused, db.migrating(engine) as conn:
        conn.exec_driver_sql(
            "DELETE FROM sync_runs"
        )  # as a faulty migration might (5 jobs, 5 history rows, 10 job_routes runs)
    assert rows(engine) == before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # restored on the pooled connection


VERTEX_JOB = {  # as the gateway relays Vertex AI: milliseconds, int64 as text, an integer error code
    "id": "4000000000000007919",
    "object": "finetune",
    "status": "failed",
    "created_at": 1748768382876,
    "finished_at": 1748770000000,
    "trained_tokens": "60030",
    "model": "gemini-1.5-flash-002",
    "error": {"code": 3, "message": "Dataset validation failed"},
}


def populated_at_0004(db_url: str) -> sa.Engine:
    engine = db.make_engine(db.parse_url(db_url))
    db.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync_runs (id, started_at, finished_at, status, mode, pages, requests,"
                " jobs_seen, jobs_inserted, jobs_updated, jobs_unchanged)"
                " VALUES (1, 1, 2, 'failed', 'incremental', 1, 1, 1, 1, 0, 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, object, created_at, finished_at, status, model, trained_tokens, raw,"
                " content_hash, first_seen_at, last_seen_at, last_sync_run_id)"
                " VALUES (:id, 'finetune', :created, :finished, 'failed', :model, NULL, :raw, 'old', 1, 1, 1)"
            ),
            {
                "id": VERTEX_JOB["id"],
                "created": VERTEX_JOB["created_at"],
                "finished": VERTEX_JOB["finished_at"],
                "model": VERTEX_JOB["model"],
                "raw": json.dumps(VERTEX_JOB),
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO job_history (job_id, sync_run_id, observed_at, status, content_hash, raw)"
                " VALUES (:id, 1, 1, 'failed', 'old', :raw)"
            ),
            {"id": VERTEX_JOB["id"], "raw": json.dumps(VERTEX_JOB)},
        )
        conn.execute(
            sa.text("UPDATE sync_state SET history_complete = false, resume_after = :id"), VERTEX_JOB
        )
    return engine


def test_0005_turns_the_checkpoint_into_a_gap_and_rederives_rows_and_0004_gets_them_back(db_url: str) -> None:
    engine = populated_at_0004(db_url)
    db.upgrade(engine, "0007")  # 0008 rehashes the history (its own test is below)
    with engine.connect() as conn:
        gaps = conn.execute(sa.text("SELECT after_id, until_id, blocked_reason FROM sync_gaps")).all()
        job = conn.execute(
            sa.text(
                "SELECT created_at, finished_at, trained_tokens, status_class, vanished_at, last_sync_run_id,"
                " content_hash <> 'old' FROM jobs"
            )
        ).one()
        error = conn.execute(sa.text("SELECT job_id, code, message FROM errors")).one()
        history = conn.execute(sa.text("SELECT job_id, sync_run_id, content_hash FROM job_history")).one()
    assert [tuple(g) for g in gaps] == [(VERTEX_JOB["id"], None, None)]  # walk on from it to the end
    assert tuple(job) == (1748768382, 1748770000, 60030, "failed", None, 1, True)
    assert tuple(error) == (VERTEX_JOB["id"], "3", "Dataset validation failed")
    assert tuple(history) == (VERTEX_JOB["id"], 1, "old")  # history stays as it was observed

    db.downgrade(engine, "0004")
    with engine.connect() as conn:
        state = conn.execute(sa.text("SELECT history_complete, resume_after FROM sync_state")).one()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
        kept = conn.execute(sa.text("SELECT id, last_sync_run_id FROM jobs")).one()
    assert (bool(state[0]), state[1]) == (False, VERTEX_JOB["id"])
    assert not columns & {"status_class", "provider", "vanished_at"}
    assert tuple(kept) == (VERTEX_JOB["id"], 1)
    db.upgrade(engine)
    engine.dispose()


# Archived before 0008: each job listed, then fetched by id, then listed again (phantom changes),
# and the first job then changed for real.
OPENAI_LISTED = {
    "id": "ftjob-a",
    "status": "running",
    "estimated_finish": 1790003600,
    "hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 2.0},
    "metadata": {"lr": 1e-05},
}
OPENAI_FETCHED = {**OPENAI_LISTED, "hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 2}}
OPENAI_MOVED = {**OPENAI_FETCHED, "estimated_finish": 1790004200}
AZURE_LISTED = {"id": "ftjob-b", "status": "pending", "hyperparameters": {"learning_rate_multiplier": 1}}
AZURE_FETCHED = {**AZURE_LISTED, "status": "queued"}
BEDROCK_LISTED = {"id": "arn-c", "status": "running", "training_file": "", "error": {}, "suffix": "custom-c"}
BEDROCK_FETCHED = {
    "id": "arn-c",
    "status": "running",
    "training_file": "s3%3A%2F%2Fb%2Ftrain.jsonl",
    "fine_tuned_model": "custom-c",
    "hyperparameters": {"learning_rate_multiplier": 1e-05, "batch_size": 1, "n_epochs": 2},
    "error": {},
}
OBSERVED = [  # (provider, versions in order of observation)
    ("openai", [OPENAI_LISTED, OPENAI_FETCHED, OPENAI_LISTED, OPENAI_MOVED]),
    ("azure-openai", [AZURE_LISTED, AZURE_FETCHED, AZURE_LISTED]),
    ("bedrock", [BEDROCK_LISTED, BEDROCK_FETCHED, BEDROCK_LISTED]),
]


def populated_at_0007(db_url: str) -> tuple[sa.Engine, Any]:
    """An archive at 0007 with the rows above, hashed as 0007 did; and 0008's module."""
    engine = db.make_engine(db.parse_url(db_url))
    db.upgrade(engine, "0007")
    script = ScriptDirectory(str(db.resource_path("migrations")))
    m0008 = script.get_revision("0008").module
    with engine.begin() as conn:
        for run in range(1, 5):
            conn.execute(
                sa.text(
                    "INSERT INTO sync_runs (id, started_at, finished_at, status, mode, pages, requests,"
                    " jobs_seen, jobs_inserted, jobs_updated, jobs_unchanged)"
                    " VALUES (:run, :run, :run, 'succeeded', 'incremental', 1, 1, 1, 0, 1, 0)"
                ),
                {"run": run},
            )
        for provider, versions in OBSERVED:
            last = versions[-1]
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (id, status, raw, content_hash, first_seen_at, last_seen_at,"
                    " last_sync_run_id, status_class, provider)"
                    " VALUES (:id, :status, :raw, :hash, 1, :seen, :seen, 'running', :provider)"
                ),
                {
                    "id": last["id"],
                    "status": last["status"],
                    "raw": json.dumps(last),
                    "hash": m0008.received_hash(last, provider),
                    "seen": len(versions),
                    "provider": provider,
                },
            )
            for run, version in enumerate(versions, 1):
                conn.execute(
                    sa.text(
                        "INSERT INTO job_history (job_id, sync_run_id, observed_at, status,"
                        " content_hash, raw) VALUES (:id, :run, :run, :status, :hash, :raw)"
                    ),
                    {
                        "id": version["id"],
                        "run": run,
                        "status": version["status"],
                        "hash": m0008.received_hash(version, provider),
                        "raw": json.dumps(version),
                    },
                )
    return engine, m0008


def hashes(engine: sa.Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            "jobs": [
                tuple(r) for r in conn.execute(sa.text("SELECT id, content_hash FROM jobs ORDER BY id"))
            ],
            "job_history": [
                tuple(r)
                for r in conn.execute(sa.text("SELECT id, job_id, content_hash FROM job_history ORDER BY id"))
            ],
        }


def test_0008_rehashes_by_meaning_the_timeline_drops_phantom_rows_and_0007_gets_its_hashes_back(
    db_url: str,
) -> None:
    engine, _ = populated_at_0007(db_url)
    before = hashes(engine)
    providers = {versions[0]["id"]: provider for provider, versions in OBSERVED}
    with engine.connect() as conn:
        _, rows = reports.run_report(conn, "job_timeline", {"job_id": "ftjob-b"})
    assert len(rows) == 3  # at 0007 the phantom rows show, as "other fields" or "status"

    db.upgrade(engine)
    with engine.connect() as conn:
        raws = conn.execute(
            sa.text(
                "SELECT id, job_id, COALESCE(raw, (SELECT j.raw FROM jobs j WHERE j.id = job_id)) AS raw,"
                " observed_via FROM job_history ORDER BY id"
            )
        ).all()
        jobs = conn.execute(sa.text("SELECT id, raw FROM jobs ORDER BY id")).all()
        timelines = {
            job_id: [tuple(r[1:]) for r in reports.run_report(conn, "job_timeline", {"job_id": job_id})[1]]
            for job_id in providers
        }
    raw = {r.id: r.raw if isinstance(r.raw, dict) else json.loads(r.raw) for r in raws}
    assert [r.observed_via for r in raws] == [None] * 10  # the route was not recorded before 0008
    assert hashes(engine) == {
        "jobs": [
            (j.id, content_hash(json.loads(j.raw) if isinstance(j.raw, str) else j.raw, providers[j.id]))
            for j in jobs
        ],
        "job_history": [(r.id, r.job_id, content_hash(raw[r.id], providers[r.job_id])) for r in raws],
    }
    by_job = {job_id: [h for _, j, h in hashes(engine)["job_history"] if j == job_id] for job_id in providers}
    assert {job_id: len(set(h)) for job_id, h in by_job.items()} == {"ftjob-a": 2, "ftjob-b": 1, "arn-c": 1}
    assert by_job["ftjob-a"][:3] == [by_job["ftjob-a"][0]] * 3
    assert timelines == {
        "arn-c": [(1, "running", "first seen")],
        "ftjob-a": [(1, "running", "first seen"), (4, "running", "estimated_finish")],
        "ftjob-b": [(1, "pending", "first seen")],
    }

    db.downgrade(engine, "0007")
    assert hashes(engine) == before
    with engine.connect() as conn:
        assert "observed_via" not in {c["name"] for c in sa.inspect(conn).get_columns("job_history")}
        assert len(reports.run_report(conn, "job_timeline", {"job_id": "ftjob-b"})[1]) == 3
    db.upgrade(engine)
    engine.dispose()
