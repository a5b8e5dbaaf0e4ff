"""Coverage as open gaps (replacing sync_state), vanished jobs, status_class and provider per job.

Existing rows are re-derived from `raw` with today's normalization (milliseconds become seconds,
numeric strings integers, provider statuses classified), so an archive made before this revision
reads like one made after it. sync_state's checkpoint becomes a gap that runs to the end of the
history (where an older head walk's gap really ended is not recorded, so the next run walks on
to the end once: slower, never incomplete).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import importlib.util
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NEW_COLUMNS = (("status_class", sa.Text), ("provider", sa.Text), ("vanished_at", sa.Double))


def sibling(name: str):  # type: ignore[no-untyped-def]
    """Another revision's module (for the views it defines)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def utc(col: str, fmt: str, dialect: str) -> str:
    return sibling("0004_views.py").utc(col, fmt, dialect)  # type: ignore[no-any-return]


def field(path: str, dialect: str) -> str:
    """A member of job_history.raw as text. PostgreSQL's ->> cannot return a string holding
    \\u0000 ("unsupported Unicode escape sequence"), so the escape becomes U+FFFD's first."""
    keys = path.split(".")
    if dialect == "postgresql":
        member = "h.raw" + "".join(f"->'{k}'" for k in keys)
        return f"(replace(({member})::text, '\\u0000', '\\ufffd'))::json #>> '{{}}'"
    return f"CAST(json_extract(h.raw, '$.{path}') AS TEXT)"


def views(d: str) -> dict[str, str]:
    old = sibling("0004_views.py")
    stamp = "%Y-%m-%d %H:%M:%S"
    history = old.views(d)["job_history_fields"]
    if d == "postgresql":
        for path in ("finished_at", "estimated_finish", "fine_tuned_model", "trained_tokens", "error.code"):
            history = history.replace(old.field(path, d), field(path, d))
    summary = old.views(d)["job_summary"].replace(
        "SELECT j.id, j.status, j.model,",
        f"SELECT j.id, j.status, j.status_class, j.provider, j.vanished_at, "
        f"{utc('j.vanished_at', stamp, d)} AS vanished_utc, j.model,",
    )
    return {"job_summary": summary, "job_history_fields": history}


def upgrade() -> None:
    bind = op.get_bind()
    d = bind.dialect.name
    for name in views(d):
        op.execute(f"DROP VIEW {name}")
    for name, kind in NEW_COLUMNS:
        op.add_column("jobs", sa.Column(name, kind))
    op.create_index("ix_jobs_status_class", "jobs", ["status_class"])
    gaps = op.create_table(
        "sync_gaps",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("after_id", sa.Text),
        sa.Column("until_id", sa.Text),
        sa.Column("until_created_at", sa.BigInteger),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("blocked_reason", sa.Text),
        sa.Column("blocked_at", sa.Double),
    )
    complete, resume = bind.execute(sa.text("SELECT history_complete, resume_after FROM sync_state")).one()
    has_jobs = bind.execute(sa.text("SELECT count(*) FROM jobs")).scalar()
    if resume is not None or (has_jobs and not complete):
        op.bulk_insert(gaps, [{"after_id": resume, "until_id": None, "opened_at": time.time()}])
    op.drop_table("sync_state")
    from archiver.store import rederive_all  # the normalization of this release

    rederive_all(bind)
    for name, body in views(d).items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    bind = op.get_bind()
    d = bind.dialect.name
    old = sibling("0004_views.py").views(d)
    for name in views(d):
        op.execute(f"DROP VIEW {name}")
    state = op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("history_complete", sa.Boolean, nullable=False),
        sa.Column("resume_after", sa.Text),
        sa.Column("updated_at", sa.Double),
    )
    rows = bind.execute(sa.text("SELECT after_id, until_id FROM sync_gaps ORDER BY id")).all()
    to_end = [after for after, until in rows if until is None]
    resume = to_end[0] if to_end else (rows[0][0] if rows else None)
    op.bulk_insert(state, [{"id": 1, "history_complete": not to_end, "resume_after": resume}])
    op.drop_table("sync_gaps")
    op.drop_index("ix_jobs_status_class", "jobs")
    for name, _ in NEW_COLUMNS:  # native DROP COLUMN (SQLite >= 3.35): no table rebuild, no cascades
        op.execute(f"ALTER TABLE jobs DROP COLUMN {name}")
    for name in views(d):
        op.execute(f"CREATE VIEW {name} AS {old[name]}")
