"""The archive's tables, as SQLAlchemy Core objects; the migrations create them."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Serial = BigInteger().with_variant(Integer(), "sqlite")


def chain_columns() -> tuple[Column, ...]:  # type: ignore[type-arg]
    """A link of the audit chain (archiver/chain.py): its place, the exact text hashed, its hash."""
    return (Column("seq", BigInteger), Column("record", Text), Column("hash", Text))


# What the status, the reports and the dashboard read of every job (migrations 0013 and 0014 say why)
REPORTS = (
    *("created_at", "status", "status_class", "model", "finished_at", "trained_tokens", "vanished_at"),
    "id",
)
HYPERPARAMETER_GROUPS = (
    *("model", "method_type", "n_epochs", "batch_size", "learning_rate_multiplier"),
    "created_at",
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("started_at", Double, nullable=False),  # Unix seconds, like the API's times
    Column("finished_at", Double),
    Column("status", Text, nullable=False),  # running, succeeded, failed, interrupted, abandoned
    Column("mode", Text, nullable=False),  # full or incremental
    Column("pages", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("jobs_seen", Integer, nullable=False, default=0),
    Column("jobs_inserted", Integer, nullable=False, default=0),
    Column("jobs_updated", Integer, nullable=False, default=0),
    Column("jobs_unchanged", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("base_url", Text),
    Column("jobs_rejected", Integer, nullable=False, server_default="0"),
    *chain_columns(),  # set when the run ends: its row is then a link of the audit chain (chain.py)
    Column("route", Text, nullable=False, server_default="default"),  # the route it synced (routes.py)
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("object", Text),
    Column("created_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("estimated_finish", BigInteger),
    Column("status", Text),
    Column("model", Text),
    Column("fine_tuned_model", Text),
    Column("organization_id", Text),
    Column("trained_tokens", BigInteger),
    Column("training_file", Text),
    Column("validation_file", Text),
    Column("seed", BigInteger),
    Column("user_provided_suffix", Text),
    Column("method_type", Text),
    Column("n_epochs", Text),
    Column("batch_size", Text),
    Column("learning_rate_multiplier", Text),
    Column("metadata", JSON),
    Column("raw", JSON, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("first_seen_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("last_sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("status_class", Text),  # queued, running, succeeded, failed, cancelled, unknown
    Column("provider", Text),  # who answered: x-portkey-provider, the routing's provider, or unknown
    Column("vanished_at", Double),  # when a sync found the job gone from the API; NULL while listed
    Index(None, "status"),
    Index("ix_jobs_reports", *REPORTS),  # named by hand: the convention's would pass 63 characters
    Index("ix_jobs_hyperparameter_groups", *HYPERPARAMETER_GROUPS),
    Index(None, "status_class", "vanished_at", "id"),
)
FINISHED = jobs.c.finished_at.is_not(None)
Index(
    "ix_jobs_durations",
    *(jobs.c.model, jobs.c.status, jobs.c.finished_at - jobs.c.created_at),
    *(jobs.c.created_at, jobs.c.finished_at),
    sqlite_where=FINISHED,
    postgresql_where=FINISHED,
)


def job_fk() -> Column:  # type: ignore[type-arg]
    return Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)


errors = Table(
    "errors",
    metadata,
    job_fk(),
    Column("code", Text),
    Column("message", Text),
    Column("param", Text),
)

result_files = Table(
    "result_files",
    metadata,
    job_fk(),
    Column("position", Integer, primary_key=True),
    Column("file_id", Text),
)

integrations = Table(
    "integrations",
    metadata,
    job_fk(),
    Column("position", Integer, primary_key=True),
    Column("type", Text),
    Column("wandb_project", Text),
    Column("wandb_name", Text),
    Column("wandb_entity", Text),
    Column("settings", JSON),
)

tags = Table(
    "tags",
    metadata,
    job_fk(),
    Column("integration_position", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("tag", Text),
    ForeignKeyConstraint(
        ["job_id", "integration_position"],
        ["integrations.job_id", "integrations.position"],
        ondelete="CASCADE",
    ),
)

job_history = Table(
    "job_history",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("observed_at", Double, nullable=False),
    Column("status", Text),
    Column("content_hash", Text, nullable=False),
    # The job as received then; NULL in the job's newest row: its JSON is the job's jobs.raw (one
    # copy; a row's raw is filled when a newer version replaces jobs.raw). chain.history_raw reads either.
    Column("raw", JSON(none_as_null=True)),
    Column("observed_via", Text),  # list or get (a single-job GET); NULL: observed before 0008 recorded it
    *chain_columns(),
    Index(None, "job_id", "id"),
)

CHILD_TABLES = (tags, integrations, result_files, errors)  # delete order

sync_gaps = Table(  # parts of the listing that may hold jobs never archived: see sync.py
    "sync_gaps",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("after_id", Text),  # resume with after=<this id>; NULL: from the head of the listing
    Column("until_id", Text),  # the archived job that ends the gap; NULL: the end of the history
    Column("until_created_at", BigInteger),  # a job created before it ends the gap too (it vanished)
    Column("opened_at", Double, nullable=False),
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),  # the run that last moved it
    Column("blocked_reason", Text),  # the route refused to page here: why
    Column("blocked_at", Double),  # when it last refused; tried again a day later
    Column("after_created_at", BigInteger),  # after_id's created_at then: a job that moves is no cursor
    Column("route", Text, nullable=False, server_default="default"),  # each route has its own coverage
)

job_routes = Table(  # which routes list a job: a job is one row of `jobs` however many routes list it
    "job_routes",
    metadata,
    Column("route", Text, primary_key=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("first_seen_run", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("last_seen_run", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Index(None, "job_id"),
)

rejected_items = Table(  # list items that are not jobs: kept as received, never silently dropped
    "rejected_items",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("observed_at", Double, nullable=False),
    Column("page_after", Text),  # the cursor the page was fetched with
    Column("position", Integer, nullable=False),  # 0-based, in the page
    Column("reason", Text, nullable=False),
    Column("raw", JSON),
)

job_refresh = Table(  # how an in-flight job is refreshed; no row: every run, the common case
    "job_refresh",
    metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("due_at", Double),  # unchanged for long: not fetched again before this (back-off)
    Column("failures", Integer, nullable=False, server_default="0"),  # its GETs failed, runs in a row
    Column("failing_since", Double),  # the first of those failures
    Column("error", Text),  # the last failure, one line
    Column("missing_at", Double),  # a GET answered 404 once: vanished only when confirmed
)

run_listings = Table(  # the ids a full walk listed this run (archiver/listings.py); emptied as it ends
    "run_listings",
    metadata,
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("job_id", Text, primary_key=True),
    Column("walk", Integer, primary_key=True),  # -1: a walk from the head; 0, 1, ...: a segment
)

detail_history = Table(  # each time a job's details were archived: a link of the audit chain
    "detail_history",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("sync_run_id", ForeignKey("sync_runs.id", ondelete="SET NULL")),
    Column("written_at", Double, nullable=False),
    Column("details_sha256", Text, nullable=False),  # chain.details_digest of the job's detail rows then
    *chain_columns(),
    Index(None, "job_id", "id"),
)

chain_head = Table(  # one row: the archive's identity and the newest link of its audit chain
    "chain_head",
    metadata,
    Column("archive_id", Text, primary_key=True),
    Column("seq", BigInteger, nullable=False),  # 0: no link yet
    Column("hash", Text, nullable=False),
    Column("updated_at", Double),
)

verify_runs = Table(  # each `archiver verify` that could record itself
    "verify_runs",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("verified_at", Double, nullable=False),
    Column("rows_checked", BigInteger, nullable=False),
    Column("intact", Integer, nullable=False),  # 1 or 0
    Column("anchored_seq", BigInteger),  # the last link a checkpoint kept elsewhere vouches for
    Column("failures", Text),  # the first failure of each kind, one line each
)

CHAINED = (job_history, sync_runs, detail_history)

# The details' tables are in their own module; importing it here puts them on `metadata`.
from archiver import detail_models  # noqa: E402, F401
