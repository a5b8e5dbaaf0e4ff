"""Core tables: jobs and their children, the audit history and the run log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def job_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "sync_runs",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        *(
            sa.Column(name, sa.Integer, nullable=False)
            for name in (
                "pages",
                "requests",
                "jobs_seen",
                "jobs_inserted",
                "jobs_updated",
                "jobs_unchanged",
            )
        ),
        sa.Column("error", sa.Text),
        sa.Column("base_url", sa.Text),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("object", sa.Text),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("estimated_finish", sa.BigInteger),
        sa.Column("status", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("fine_tuned_model", sa.Text),
        sa.Column("organization_id", sa.Text),
        sa.Column("trained_tokens", sa.BigInteger),
        sa.Column("training_file", sa.Text),
        sa.Column("validation_file", sa.Text),
        sa.Column("seed", sa.BigInteger),
        sa.Column("user_provided_suffix", sa.Text),
        sa.Column("method_type", sa.Text),
        sa.Column("n_epochs", sa.Text),
        sa.Column("batch_size", sa.Text),
        sa.Column("learning_rate_multiplier", sa.Text),
        sa.Column("metadata", sa.JSON),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("first_seen_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
        sa.Column("last_sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_table(
        "errors",
        job_fk(),
        sa.Column("code", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("param", sa.Text),
    )
    op.create_table(
        "result_files",
        job_fk(),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("file_id", sa.Text),
    )
    op.create_table(
        "integrations",
        job_fk(),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("type", sa.Text),
        sa.Column("wandb_project", sa.Text),
        sa.Column("wandb_name", sa.Text),
        sa.Column("wandb_entity", sa.Text),
        sa.Column("settings", sa.JSON),
    )
    op.create_table(
        "tags",
        job_fk(),
        sa.Column("integration_position", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("tag", sa.Text),
        sa.ForeignKeyConstraint(
            ["job_id", "integration_position"],
            ["integrations.job_id", "integrations.position"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "job_history",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("observed_at", sa.Double, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
    )
    op.create_index("ix_job_history_job_id_id", "job_history", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("job_history")
    op.drop_table("tags")
    op.drop_table("integrations")
    op.drop_table("result_files")
    op.drop_table("errors")
    op.drop_table("jobs")
    op.drop_table("sync_runs")
