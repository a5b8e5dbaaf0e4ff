"""job_history.typed_sha256: the digest of the job's rows as written with the history row
(archiver/store.py's typed_digest), in the row's audit record, so that `archiver verify` checks a
job's current rows against it rather than normalizing the job's JSON again. Rows written before
keep NULL (their records say nothing of it): verify normalizes those jobs as before. A
downgrade drops the column; upgrading again takes it back from the records.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_history", sa.Column("typed_sha256", sa.Text))
    # Records are what the chain vouches for: a digest they hold (written before a downgrade) comes back.
    said = (
        "record::json ->> 'typed_sha256'"
        if op.get_bind().dialect.name == "postgresql"
        else "json_extract(record, '$.typed_sha256')"
    )
    op.execute(f"UPDATE job_history SET typed_sha256 = {said} WHERE record LIKE '%\"typed_sha256\"%'")


def downgrade() -> None:  # SQLite >= 3.35 drops a column the views do not name
    op.execute("ALTER TABLE job_history DROP COLUMN typed_sha256")
