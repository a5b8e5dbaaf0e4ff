"""The audit chain (archiver/chain.py): job_history, sync_runs and the new detail_history carry
seq, record and hash; chain_head holds the archive's id and the newest link; verify_runs records
each `archiver verify`; the view audit_chain lists every link in order.

An existing archive's chain is built here over what it holds: its history in id order, then its
ended runs in id order, then one detail_history link per job whose details are archived. The next
run writes the first checkpoint.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import uuid

import sqlalchemy as sa
from alembic import op

from archiver import chain

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHAINED = ("job_history", "sync_runs", "detail_history")
AUDIT_CHAIN = "CREATE VIEW audit_chain AS\n" + "\nUNION ALL\n".join(
    f"SELECT seq, '{t}' AS table_name, id, hash, record FROM {t} WHERE seq IS NOT NULL" for t in CHAINED
)


def chain_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("seq", sa.BigInteger), sa.Column("record", sa.Text), sa.Column("hash", sa.Text)]


def upgrade() -> None:
    for table in ("job_history", "sync_runs"):  # plain ALTER TABLE: SQLite need not rebuild them
        for column in chain_columns():
            op.add_column(table, column)
    op.create_table(
        "detail_history",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("written_at", sa.Double, nullable=False),
        sa.Column("details_sha256", sa.Text, nullable=False),
        *chain_columns(),
    )
    op.create_index("ix_detail_history_job_id_id", "detail_history", ["job_id", "id"])
    op.create_table(
        "chain_head",
        sa.Column("archive_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double),
    )
    op.create_table(
        "verify_runs",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("verified_at", sa.Double, nullable=False),
        sa.Column("rows_checked", sa.BigInteger, nullable=False),
        sa.Column("intact", sa.Integer, nullable=False),
        sa.Column("anchored_seq", sa.BigInteger),
        sa.Column("failures", sa.Text),
    )
    conn = op.get_bind()
    start = {"a": str(uuid.uuid4()), "h": chain.GENESIS}
    conn.execute(sa.text("INSERT INTO chain_head (archive_id, seq, hash) VALUES (:a, 0, :h)"), start)
    chain.rebuild(conn)
    op.execute(AUDIT_CHAIN)


def downgrade() -> None:
    op.execute("DROP VIEW audit_chain")
    for table in ("verify_runs", "chain_head", "detail_history"):
        op.drop_table(table)
    for table in ("sync_runs", "job_history"):  # SQLite >= 3.35 drops a column the views do not name
        for column in ("hash", "record", "seq"):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
