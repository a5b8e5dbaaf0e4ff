"""One copy of each job's JSON: a job's newest history row no longer repeats jobs.raw.

Every job's JSON was stored twice, in jobs.raw and in its newest job_history row (a third of a
first sync's archive). Now job_history.raw is NULL in a job's newest row, whose JSON is jobs.raw
(the chain's raw_sha256 is of that text: archiver/chain.py, history_raw); a sync that replaces
jobs.raw first moves the old JSON into the row that was the newest (archiver/store.py). A newest
row whose JSON is not its job's jobs.raw (an archive edited by hand) keeps its own, for verify.
job_history_fields reads the JSON from whichever holds it.

SQLite cannot drop a NOT NULL in place: job_history is rebuilt, and every view is dropped first
and created again after (SQLite refuses to rename a table while a view names a missing one). At
1,000,000 jobs: 51 s, and the file grows by 1.4 GB until a VACUUM (benchmarks/RESULTS.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10
"""

import importlib.util
import warnings
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NEWEST = "SELECT max(n.id) FROM job_history n GROUP BY n.job_id"
JOBS_RAW = "(SELECT j.raw FROM jobs j WHERE j.id = job_history.job_id)"


def sibling(name: str):  # type: ignore[no-untyped-def]
    """Another revision's module (for the views it defines)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def history_fields(d: str) -> str:
    """0007's job_history_fields (0006's on SQLite) over the JSON of each row, wherever it is."""
    raw = "COALESCE(h.raw, (SELECT j.raw FROM jobs j WHERE j.id = h.job_id))"
    old = sibling("0006_nul_safe_views.py")
    safe = (
        sibling("0007_surrogate_safe_views.py").safe_raw(raw)
        if d == "postgresql"
        else old.without_nul(raw, d)
    )
    body = sibling("0004_views.py").views(d)["job_history_fields"]
    return (
        body.rstrip().removesuffix("job_history h")
        + f"(SELECT {old.HISTORY_COLUMNS}, {safe} AS raw FROM job_history h) h"
    )


def upgrade() -> None:
    set_nullable(True, history_fields(op.get_bind().dialect.name))
    op.execute(
        f"UPDATE job_history SET raw = NULL WHERE id IN ({NEWEST})"
        f" AND CAST(raw AS TEXT) = (SELECT CAST(j.raw AS TEXT) FROM jobs j WHERE j.id = job_history.job_id)"
    )


def downgrade() -> None:
    op.execute(f"UPDATE job_history SET raw = {JOBS_RAW} WHERE raw IS NULL")
    set_nullable(False, sibling("0008_history_meaning.py").history_view(op.get_bind().dialect.name))


def set_nullable(nullable: bool, fields_view: str) -> None:
    """job_history.raw NULL or not, and job_history_fields defined as `fields_view`."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.alter_column("job_history", "raw", existing_type=sa.JSON(), nullable=nullable)
        op.execute("DROP VIEW job_history_fields")
        op.execute(f"CREATE VIEW job_history_fields AS {fields_view}")
        return
    views = bind.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid")
    ).all()
    for name, _ in views:
        op.execute(f'DROP VIEW "{name}"')
    with warnings.catch_warnings(), op.batch_alter_table("job_history") as batch:
        # reflecting job_history reflects jobs, whose ix_jobs_durations SQLAlchemy cannot (0014)
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        batch.alter_column("raw", existing_type=sa.JSON(), nullable=nullable)
    for name, sql in views:
        op.execute(
            f"CREATE VIEW job_history_fields AS {fields_view}" if name == "job_history_fields" else sql
        )
