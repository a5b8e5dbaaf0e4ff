"""Content hashes of a job's meaning; job_history.observed_via.

A job's content hash was the SHA-256 of the job as received, so the gateway's single-job GET
(which re-serializes numbers, renames Azure's statuses, carries more of a Bedrock job than the list)
made an unchanged job look changed whenever a run fetched it instead of listing it. It is now the
hash of what the job means (archiver.store.content_hash, archiver.normalize.meaning): this revision
recomputes it from `raw` for every job and every history row, in batches. job_history keeps every
row (it is append-only); the job_timeline report passes over consecutive rows of equal hash.

job_history gains `observed_via`, the route that observed the row: "list" or "get". It stays NULL
for the rows observed before this revision: nothing recorded which route served them, and a run
fetched its in-flight jobs one by one whenever that was cheaper, so "list" would be a guess.

The downgrade puts back the hashes of the jobs as received (the definition of 0001 to 0007, kept
here as it was) and drops the column.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000

jobs = sa.table("jobs", sa.column("id", sa.Text), sa.column("raw", sa.JSON), sa.column("provider", sa.Text))
history = sa.table(
    "job_history",
    sa.column("id", sa.BigInteger),
    sa.column("job_id", sa.Text),
    sa.column("raw", sa.JSON),
    sa.column("content_hash", sa.Text),
)
jobs_hash = sa.table("jobs", sa.column("id", sa.Text), sa.column("content_hash", sa.Text))


def rehash(hash_of: Callable[[Any, str], str]) -> None:
    """Set jobs.content_hash and job_history.content_hash to hash_of(raw, the job's provider)."""
    conn = op.get_bind()
    queries = (
        (jobs_hash, sa.select(jobs.c.id, jobs.c.raw, jobs.c.provider)),
        (
            history,
            sa.select(history.c.id, history.c.raw, jobs.c.provider).join_from(
                history, jobs, history.c.job_id == jobs.c.id
            ),
        ),
    )
    for table, query in queries:
        key = query.selected_columns[0]
        last: Any = None
        while True:
            page = query.order_by(key).limit(BATCH)
            rows = conn.execute(page if last is None else page.where(key > last)).all()
            if not rows:
                break
            last = rows[-1][0]
            values = [{"k": r[0], "h": hash_of(r[1], r[2] or "unknown")} for r in rows]
            update = table.update().where(table.c.id == sa.bindparam("k"))
            conn.execute(update.values(content_hash=sa.bindparam("h")), values)


def meaning_hash(raw: Any, provider: str) -> str:
    from archiver.store import content_hash  # the meaning of this release, as 0005 rederives

    return content_hash(raw, provider)


def received_hash(raw: Any, provider: str) -> str:
    """0001 to 0007: SHA-256 of the job as received, keys sorted, numbers as orjson writes them."""
    try:
        text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        text = received_json(raw)
    return hashlib.sha256(text.encode()).hexdigest()


def received_json(value: Any) -> str:
    if isinstance(value, dict):
        members = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{received_json(k)}:{received_json(v)}" for k, v in members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(received_json(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = json.dumps(value, ensure_ascii=False)
        return "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in escaped)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return orjson.dumps(value).decode()


def upgrade() -> None:
    op.add_column("job_history", sa.Column("observed_via", sa.Text))
    rehash(meaning_hash)


def downgrade() -> None:
    rehash(received_hash)
    view = history_view(op.get_bind().dialect.name)  # SQLite rebuilds the table: the view must go
    op.execute("DROP VIEW job_history_fields")
    with op.batch_alter_table("job_history") as batch:
        batch.drop_column("observed_via")
    op.execute(f"CREATE VIEW job_history_fields AS {view}")


def history_view(d: str) -> str:
    """job_history_fields as 0007 left it (0006's on SQLite)."""
    for name in ("0007_surrogate_safe_views.py", "0006_nul_safe_views.py"):
        path = Path(__file__).with_name(name)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        views: dict[str, str] = module.views(d)
        if "job_history_fields" in views:
            return views["job_history_fields"]
    raise AssertionError("0006 defines job_history_fields for every dialect")
