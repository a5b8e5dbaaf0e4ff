"""Sync state: whether a full walk has completed, and the checkpoint of an interrupted one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("history_complete", sa.Boolean, nullable=False),
        sa.Column("resume_after", sa.Text),
        sa.Column("updated_at", sa.Double),
    )
    # Before this revision every sync walked the whole history: one that succeeded completed it.
    done = (
        op.get_bind().execute(sa.text("SELECT count(*) FROM sync_runs WHERE status = 'succeeded'")).scalar()
    )
    op.bulk_insert(state, [{"id": 1, "history_complete": bool(done), "resume_after": None}])


def downgrade() -> None:
    op.drop_table("sync_state")
