"""A job's details: its events, checkpoints, files, result file contents and the metrics parsed from them.

job_details says, per final job, whether its details are archived, to be tried again (when), or
cannot be had through its route (why). The view job_metric_steps puts the common metrics of a step
side by side; job_final_metrics sums up each job's curve (final train loss, best validation loss).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Each common metric and the result-file columns that hold it (OpenAI's guide, Azure's docs,
# reinforcement fine-tuning); an unknown column stays in job_metrics only.
COMMON = {
    "train_loss": ("train_loss",),
    "train_accuracy": ("train_accuracy", "train_mean_token_accuracy"),
    "valid_loss": ("valid_loss",),
    "valid_accuracy": ("valid_mean_token_accuracy", "validation_mean_token_accuracy", "valid_accuracy"),
    "full_valid_loss": ("full_valid_loss",),
    "full_valid_accuracy": ("full_valid_mean_token_accuracy",),
    "train_reward_mean": ("train_reward_mean",),
    "valid_reward_mean": ("valid_reward_mean",),
}


def steps_view() -> str:
    columns = ",\n       ".join(
        f"max(CASE WHEN metric IN ({', '.join(repr(n) for n in names)}) THEN value END) AS {name}"
        for name, names in COMMON.items()
    )
    body = f"SELECT job_id, step,\n       {columns}\nFROM job_metrics\nGROUP BY job_id, step"
    return f"CREATE VIEW job_metric_steps AS\n{body}"


FINAL_METRICS = """CREATE VIEW job_final_metrics AS
WITH last AS (
    SELECT job_id, count(*) AS steps, max(step) AS final_step FROM job_metric_steps GROUP BY job_id
), best AS (
    SELECT job_id, min(valid_loss) AS best_valid_loss, max(step) AS last_valid_step
    FROM job_metric_steps WHERE valid_loss IS NOT NULL GROUP BY job_id
), best_step AS (
    SELECT s.job_id, min(s.step) AS best_valid_step
    FROM job_metric_steps s JOIN best b ON b.job_id = s.job_id AND s.valid_loss = b.best_valid_loss
    GROUP BY s.job_id
)
SELECT j.id AS job_id, j.model, j.method_type, j.status, j.created_at, j.trained_tokens,
       j.n_epochs, j.batch_size, j.learning_rate_multiplier,
       l.steps, l.final_step, f.train_loss AS final_train_loss, f.train_accuracy AS final_train_accuracy,
       b.best_valid_loss, bs.best_valid_step, v.valid_loss AS final_valid_loss
FROM jobs j
JOIN last l ON l.job_id = j.id
JOIN job_metric_steps f ON f.job_id = j.id AND f.step = l.final_step
LEFT JOIN best b ON b.job_id = j.id
LEFT JOIN best_step bs ON bs.job_id = j.id
LEFT JOIN job_metric_steps v ON v.job_id = j.id AND v.step = b.last_valid_step"""


def job_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "job_details",
        job_fk(),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", sa.Double),
        sa.Column("error", sa.Text),
        sa.Column("fetched_at", sa.Double, nullable=False),
        sa.Column("sync_run_id", Serial, sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
    )
    op.create_index("ix_job_details_state_next_try_at", "job_details", ["state", "next_try_at"])
    op.create_table(
        "job_events",
        job_fk(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("level", sa.Text),
        sa.Column("type", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("data", sa.JSON),
        sa.Column("raw", sa.JSON, nullable=False),
    )
    op.create_table(
        "job_checkpoints",
        job_fk(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("step_number", sa.BigInteger),
        sa.Column("fine_tuned_model_checkpoint", sa.Text),
        sa.Column("metrics", sa.JSON),
        sa.Column("raw", sa.JSON, nullable=False),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("filename", sa.Text),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("purpose", sa.Text),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("status", sa.Text),
        sa.Column("raw", sa.JSON),
        sa.Column("missing", sa.Text),
        sa.Column("fetched_at", sa.Double, nullable=False),
    )
    op.create_table(
        "file_contents",
        sa.Column("file_id", sa.Text, primary_key=True),
        sa.Column("content", sa.LargeBinary),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("encoding", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("fetched_at", sa.Double, nullable=False),
    )
    op.create_table(
        "job_metrics",
        job_fk(),
        sa.Column("file_id", sa.Text, primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("value", sa.Double, nullable=False),
    )
    op.create_table(
        "rejected_details",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("file_id", sa.Text),
        sa.Column("line", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text),
    )
    op.create_index("ix_rejected_details_job_id", "rejected_details", ["job_id"])
    op.execute(steps_view())
    op.execute(FINAL_METRICS)


def downgrade() -> None:
    op.execute("DROP VIEW job_final_metrics")
    op.execute("DROP VIEW job_metric_steps")
    for table in (
        "rejected_details",
        "job_metrics",
        "file_contents",
        "files",
        "job_checkpoints",
        "job_events",
        "job_details",
    ):
        op.drop_table(table)
