"""The tables of a job's details (archiver/details.py): fetched once the job is final, each job in
one transaction. On models.metadata with the rest (models.py imports this module)."""

from sqlalchemy import JSON, BigInteger, Column, Double, ForeignKey, Index, Integer, LargeBinary, Table, Text

from archiver.models import Serial, job_fk, metadata

job_details = Table(  # one row per final job whose details were fetched, tried, or cannot be had
    "job_details",
    metadata,
    job_fk(),
    Column("state", Text, nullable=False),  # done, retry (with back-off) or unsupported (by the route)
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", Double),  # retry: not before this time
    Column("error", Text),  # retry: the last failure; unsupported: why; done: what could not be had
    Column("fetched_at", Double, nullable=False),  # the last attempt
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Index(None, "state", "next_try_at"),
)

job_events = Table(
    "job_events",
    metadata,
    job_fk(),
    Column("id", Text, primary_key=True),
    Column("created_at", BigInteger),
    Column("level", Text),
    Column("type", Text),
    Column("message", Text),
    Column("data", JSON),
    Column("raw", JSON, nullable=False),
)

job_checkpoints = Table(
    "job_checkpoints",
    metadata,
    job_fk(),
    Column("id", Text, primary_key=True),
    Column("created_at", BigInteger),
    Column("step_number", BigInteger),
    Column("fine_tuned_model_checkpoint", Text),
    Column("metrics", JSON),
    Column("raw", JSON, nullable=False),
)

files = Table(  # every training, validation and result file a job names, fetched once per id
    "files",
    metadata,
    Column("id", Text, primary_key=True),
    Column("filename", Text),
    Column("bytes", BigInteger),
    Column("purpose", Text),
    Column("created_at", BigInteger),
    Column("status", Text),
    Column("raw", JSON(none_as_null=True)),  # NULL: the API no longer knows the file (see `missing`)
    Column("missing", Text),  # why the metadata could not be had (404: gone upstream)
    Column("fetched_at", Double, nullable=False),
)

file_contents = Table(  # a result file as received, so that a parser fixed later can read it again
    "file_contents",
    metadata,
    Column("file_id", Text, primary_key=True),
    Column("content", LargeBinary),  # NULL when over the size cap or gone (see `note`)
    Column("size", BigInteger),  # bytes received, or announced when over the cap
    Column("sha256", Text),
    Column("content_type", Text),
    Column("encoding", Text),  # base64 (of the CSV), csv, or NULL when it is neither (rejected)
    Column("note", Text),
    Column("fetched_at", Double, nullable=False),
)

job_metrics = Table(  # one row per job, step and metric of its result file(s): columns vary by method
    "job_metrics",
    metadata,
    job_fk(),
    Column("file_id", Text, primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("value", Double, nullable=False),
)

job_metric_summary = Table(  # each job's curve summed up from job_metrics (detail_store.summary)
    "job_metric_summary",
    metadata,
    job_fk(),
    Column("steps", BigInteger, nullable=False),
    Column("final_step", BigInteger, nullable=False),
    Column("final_train_loss", Double),
    Column("final_train_accuracy", Double),
    Column("best_valid_loss", Double),
    Column("best_valid_step", BigInteger),
    Column("final_valid_loss", Double),
)

rejected_details = Table(  # what could not be parsed, kept as received with the reason
    "rejected_details",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),  # event, checkpoint, file, result_file, result_row
    Column("file_id", Text),
    Column("line", Integer),  # result_row: 1-based line of the CSV
    Column("reason", Text, nullable=False),
    Column("raw", Text),
    Index(None, "job_id"),
)

# A job's, replaced together
DETAIL_TABLES = (job_metrics, job_metric_summary, job_events, job_checkpoints, rejected_details)
