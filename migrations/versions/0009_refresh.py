"""job_refresh: how each in-flight job is refreshed (back-off, failing GETs, an unconfirmed 404).

No row is the common case: the job is refreshed by every run. Nothing existing needs a row: an
archive upgraded to this revision refreshes its in-flight jobs as before until they earn one.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
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


def downgrade() -> None:
    op.drop_table("job_refresh")
