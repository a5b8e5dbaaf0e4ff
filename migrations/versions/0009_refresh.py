"""job_refresh: how each in-flight job is refreshed (back-off, failing GETs, an unconfirmed 404);
sync_gaps.after_created_at: when the job a gap resumes after was created, as it was then.

No row is the common case: the job is refreshed by every run. Nothing existing needs a row: an
archive upgraded to this revision refreshes its in-flight jobs as before until they earn one. An
existing gap's after_created_at is NULL: its walk takes the archived job's created_at instead.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_refresh",
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("due_at", sa.Double),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failing_since", sa.Double),
        sa.Column("error", sa.Text),
        sa.Column("missing_at", sa.Double),
    )
    with op.batch_alter_table("sync_gaps") as batch:
        batch.add_column(sa.Column("after_created_at", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("sync_gaps") as batch:
        batch.drop_column("after_created_at")
    op.drop_table("job_refresh")
