"""Quarantine for list items that cannot be archived, and their count per run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rejected_items",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("observed_at", sa.Double, nullable=False),
        sa.Column("page_after", sa.Text),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.JSON),
    )
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("jobs_rejected", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("jobs_rejected")
    op.drop_table("rejected_items")
