"""job_metric_summary: each job's curve summed up when its details are written, so that the view
job_final_metrics (and the final_metrics report) reads one row a job instead of pivoting every
metric row (at 1,000 jobs x 1,000 steps that took 24 s of CPU, growing with the rows:
benchmarks/RESULTS.md, "Metrics at scale"). Filled here from job_metrics, one job at a time.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09
"""

import importlib.util
import itertools
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# CROSS JOIN: SQLite joins in the order written (PostgreSQL plans it as any inner join), so that
# the few jobs with metrics drive the join instead of every job of a time range or a model.
FINAL_METRICS = """CREATE VIEW job_final_metrics AS
SELECT j.id AS job_id, j.model, j.method_type, j.status, j.created_at, j.trained_tokens,
       j.n_epochs, j.batch_size, j.learning_rate_multiplier,
       s.steps, s.final_step, s.final_train_loss, s.final_train_accuracy,
       s.best_valid_loss, s.best_valid_step, s.final_valid_loss
FROM job_metric_summary s CROSS JOIN jobs j
WHERE j.id = s.job_id"""


def upgrade() -> None:
    from archiver.detail_store import summary  # what this release's writes keep

    op.create_table(
        "job_metric_summary",
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("steps", sa.BigInteger, nullable=False),
        sa.Column("final_step", sa.BigInteger, nullable=False),
        sa.Column("final_train_loss", sa.Double),
        sa.Column("final_train_accuracy", sa.Double),
        sa.Column("best_valid_loss", sa.Double),
        sa.Column("best_valid_step", sa.BigInteger),
        sa.Column("final_valid_loss", sa.Double),
    )
    columns = ("job_id", "steps", "final_step", "final_train_loss", "final_train_accuracy")
    columns += ("best_valid_loss", "best_valid_step", "final_valid_loss")
    insert = sa.insert(sa.table("job_metric_summary", *map(sa.column, columns)))
    query = sa.text("SELECT job_id, step, metric, value FROM job_metrics ORDER BY job_id")
    conn = op.get_bind()
    rows = conn.execute(query, execution_options={"stream_results": True, "yield_per": 10000})
    batch: list[dict] = []
    for job_id, held in itertools.groupby(rows, key=lambda r: r[0]):
        batch.append(summary(job_id, (r[1:] for r in held)))
        if len(batch) == 1000:
            conn.execute(insert, batch)
            batch = []
    if batch:
        conn.execute(insert, batch)
    op.execute("DROP VIEW job_final_metrics")
    op.execute(FINAL_METRICS)


def downgrade() -> None:
    op.execute("DROP VIEW job_final_metrics")
    op.execute(sibling("0010_details.py").FINAL_METRICS)
    op.drop_table("job_metric_summary")


def sibling(name: str):  # type: ignore[no-untyped-def]
    """Another revision's module (for the views it defines)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
