"""run_listings: the ids a full walk lists, kept in the database for the run instead of in memory
(archiver/listings.py); indexes that the status, the reports and the dashboard need on an archive
of a million jobs (benchmarks/RESULTS.md, "At a million jobs"; measured on branch `scale`, where
this revision was numbered 0012 before main's 0012 took the routes).

Nothing existing needs a row: the table is empty between runs. A run is one route's
(sync_runs.route), so the run's id is all run_listings needs to reason per route.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


# The status, the reports and the dashboard read these columns of every job (jobs in a time range,
# by default all time): from an index that holds them, not from the rows, which hold each job's
# JSON. Named by hand: the naming convention's name would pass PostgreSQL's 63 characters.
# ix_jobs_hyperparameters starts with created_at: SQLite, without statistics, searches the reports'
# created_at range in an index that starts with it, so that index must hold the columns they read.
# No partial index of the unfinished jobs: PostgreSQL misjudges how many its predicate keeps
# (216,000 of 1,000,000, where 5 are) and plans in_flight worse with it (1.2 s -> 2.8 s).
REPORTS = [
    "created_at",
    "status",
    "status_class",
    "model",
    "finished_at",
    "trained_tokens",
    "vanished_at",
    "id",
]
HYPERPARAMETERS = ["created_at", "model", "method_type", "n_epochs", "batch_size", "learning_rate_multiplier"]


def upgrade() -> None:
    op.drop_index("ix_jobs_created_at", "jobs")  # the first column of ix_jobs_reports
    op.drop_index("ix_jobs_status_class", "jobs")  # the first of ix_jobs_status_class_vanished_at_id
    op.create_index("ix_jobs_reports", "jobs", REPORTS)
    op.create_index("ix_jobs_hyperparameters", "jobs", HYPERPARAMETERS)
    op.create_index("ix_jobs_status_class_vanished_at_id", "jobs", ["status_class", "vanished_at", "id"])
    op.create_table(
        "run_listings",
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("walk", sa.Integer, primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("run_listings")
    for name in ("ix_jobs_status_class_vanished_at_id", "ix_jobs_hyperparameters", "ix_jobs_reports"):
        op.drop_index(name, "jobs")
    op.create_index("ix_jobs_status_class", "jobs", ["status_class"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
