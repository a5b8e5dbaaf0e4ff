"""Views for analysts and reports: where SQLite and PostgreSQL differ (timestamps, JSON), only here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MAX_TIME = 253402300799  # 9999-12-31 23:59:59 UTC; beyond it a timestamp column stays NULL


def utc(col: str, fmt: str, dialect: str) -> str:
    """Unix seconds as readable UTC text, NULL when absent or out of range."""
    if dialect == "postgresql":
        pg = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
        pg = pg.replace("%H", "HH24").replace("%M", "MI").replace("%S", "SS")
        value = f"to_char(to_timestamp({col}) AT TIME ZONE 'UTC', '{pg}')"
    else:
        value = f"strftime('{fmt}', {col}, 'unixepoch')"
    return f"CASE WHEN {col} BETWEEN 0 AND {MAX_TIME} THEN {value} END"


def field(path: str, dialect: str) -> str:
    """A member of job_history.raw as text (path like 'error.code')."""
    keys = path.split(".")
    if dialect == "postgresql":
        return "h.raw" + "".join(f"->'{k}'" for k in keys[:-1]) + f"->>'{keys[-1]}'"
    return f"CAST(json_extract(h.raw, '$.{path}') AS TEXT)"


def array_length(key: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"CASE WHEN json_typeof(h.raw->'{key}') = 'array' THEN json_array_length(h.raw->'{key}') END"
    return f"CASE WHEN json_type(h.raw, '$.{key}') = 'array' THEN json_array_length(h.raw, '$.{key}') END"


def views(d: str) -> dict[str, str]:
    stamp = "%Y-%m-%d %H:%M:%S"
    return {
        "job_summary": f"""
SELECT j.id, j.status, j.model, j.fine_tuned_model, j.method_type, j.user_provided_suffix,
       j.created_at, {utc("j.created_at", stamp, d)} AS created_utc,
       {utc("j.created_at", "%Y-%m", d)} AS created_month,
       j.finished_at, {utc("j.finished_at", stamp, d)} AS finished_utc,
       j.finished_at - j.created_at AS duration_seconds,
       {utc("j.estimated_finish", stamp, d)} AS estimated_finish_utc,
       j.trained_tokens, e.code AS error_code, e.message AS error_message,
       (SELECT count(*) FROM result_files r WHERE r.job_id = j.id) AS result_file_count,
       (SELECT i.wandb_project FROM integrations i WHERE i.job_id = j.id
        ORDER BY i.position LIMIT 1) AS wandb_project,
       j.n_epochs, j.batch_size, j.learning_rate_multiplier
FROM jobs j LEFT JOIN errors e ON e.job_id = j.id""",
        "job_history_fields": f"""
SELECT h.id, h.job_id, h.sync_run_id, h.observed_at, {utc("h.observed_at", stamp, d)} AS observed_utc,
       h.status, h.content_hash,
       {field("finished_at", d)} AS finished_at, {field("estimated_finish", d)} AS estimated_finish,
       {field("fine_tuned_model", d)} AS fine_tuned_model, {field("trained_tokens", d)} AS trained_tokens,
       {field("error.code", d)} AS error_code, {array_length("result_files", d)} AS result_file_count
FROM job_history h""",
        "sync_run_summary": f"""
SELECT r.id, {utc("r.started_at", stamp, d)} AS started_utc, {utc("r.finished_at", stamp, d)} AS finished_utc,
       r.finished_at - r.started_at AS duration_seconds, r.status, r.mode, r.pages, r.requests,
       r.jobs_seen, r.jobs_inserted, r.jobs_updated, r.jobs_unchanged, r.jobs_rejected, r.error
FROM sync_runs r""",
    }


def upgrade() -> None:
    for name, body in views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in views("sqlite"):
        op.execute(f"DROP VIEW {name}")
