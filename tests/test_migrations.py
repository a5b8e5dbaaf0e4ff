"""Migration 0005 on a populated archive: the checkpoint becomes a gap, rows are re-derived from raw."""

import json

import sqlalchemy as sa

from archiver import db

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
                "INSERT INTO sync_runs (id, started_at, finished_at, status, mode, pages, requests, jobs_seen,"
                " jobs_inserted, jobs_updated, jobs_unchanged) VALUES (1, 1, 2, 'failed', 'incremental',"
                " 1, 1, 1, 1, 0, 0)"
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
    db.upgrade(engine)
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
