"""Routes (archiver/routes.py): one archive for several Portkey routes, each with its own coverage.

sync_runs and sync_gaps gain `route`; job_routes records which routes list each job (a job stays one
row of `jobs`, keyed by its provider id). What an existing archive holds belongs to the route
`default`, the one route it had: every run and gap, and every job it holds (first seen by the run of
its oldest history row, last seen by the run that last wrote it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROUTED = ("sync_runs", "sync_gaps")


def upgrade() -> None:
    for table in ROUTED:  # plain ALTER TABLE with a constant default: SQLite need not rebuild them
        op.add_column(table, sa.Column("route", sa.Text, nullable=False, server_default="default"))
    op.create_table(
        "job_routes",
        sa.Column("route", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("first_seen_run", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("last_seen_run", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    )
    op.create_index("ix_job_routes_job_id", "job_routes", ["job_id"])
    op.execute(
        "INSERT INTO job_routes (route, job_id, first_seen_run, last_seen_run) "
        "SELECT 'default', j.id, "
        "(SELECT min(h.sync_run_id) FROM job_history h WHERE h.job_id = j.id), j.last_sync_run_id "
        "FROM jobs j"
    )


def downgrade() -> None:
    op.drop_index("ix_job_routes_job_id", "job_routes")
    op.drop_table("job_routes")
    for table in ROUTED:  # SQLite >= 3.35 drops a column the views do not name
        op.execute(f"ALTER TABLE {table} DROP COLUMN route")
