"""Archive: the library facade the command line is a thin layer over (sync, report, query, status)."""

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from archiver import checkpoints, db, health, lock, reports
from archiver.detail_store import metrics_by_step
from archiver.details import CONCURRENCY, MAX_BYTES, DetailOptions, DetailsResult
from archiver.errors import ConfigError
from archiver.health import Health, parse_age
from archiver.portkey import Portkey
from archiver.routes import Route
from archiver.runs import RoutesResult, check_sizes, chosen_routes, retry_policy, sync_routes
from archiver.sync import SyncResult
from archiver.verify import Verdict, check_archive

Rows = list[dict[str, Any]]
T = TypeVar("T")


class Archive:
    """A history of fine-tuning jobs in a SQLite file or a PostgreSQL database.

    Args:
        database: a SQLAlchemy URL (`sqlite:///...`, `postgresql://user@host/db`) or a SQLite file
            path. Nothing is opened, created or written until a method needs it; reads open the
            archive read-only, so a user who may only read it can use every read method.

    Raises:
        ConfigError: the URL is neither a SQLite path nor a SQLite or PostgreSQL URL, the path
            is a directory, or the SQLite database would be in memory (it would keep nothing).

    Use it as a context manager, or call `close()`, to release the database connections.
    """

    def __init__(self, database: str | URL = "archive.db") -> None:
        self.url = db.parse_url(database) if isinstance(database, str) else database
        if self.url.get_backend_name() == "sqlite":
            db.ensure_sqlite_file(db.show_url(self.url), self.url)
        path = db.sqlite_path(self.url) if self.url.get_backend_name() == "sqlite" else None
        if path and os.path.isdir(path):
            raise ConfigError(f"{path} is a directory, not an archive: give --db a file path or a URL")
        self._engines: dict[bool, Engine] = {}

    def __repr__(self) -> str:
        return f"Archive({db.show_url(self.url)!r})"

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections (the archive can still be used afterwards)."""
        for write in sorted(self._engines):  # the writer last: SQLite's last connection folds
            self._engines.pop(write).dispose()  # the -wal back into the file, read-only ones cannot

    def engine(self, *, write: bool = False) -> Engine:
        """The SQLAlchemy engine (read-only unless `write`), for queries of your own.

        Raises ConfigError (a read-only engine needs an existing archive file) or DatabaseError
        (a new archive file cannot be created)."""
        if write not in self._engines:
            with self._database_errors():
                self._engines[write] = db.make_engine(self.url, read_only=not write)
        return self._engines[write]

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as e:
            raise db.database_error(e, db.show_url(self.url)) from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._database_errors(), self.engine().connect() as conn:
            db.ensure_archive(conn)
            yield conn

    def read(self, reader: Callable[[Connection], T]) -> T:
        """Call `reader` with a read-only connection to the archive and return what it returns.

        Raises ConfigError if there is no archive yet, DatabaseError if it cannot be read."""
        with self._read() as conn:
            return reader(conn)

    @overload
    def sync(self, route: Portkey | Route, **options: Any) -> SyncResult: ...

    @overload
    def sync(self, *, routes: Sequence[Route], **options: Any) -> RoutesResult: ...

    def sync(  # type: ignore[misc]  # the overloads name only what tells them apart
        self,
        route: Portkey | Route | None = None,
        *,
        routes: Sequence[Route] | None = None,
        full: bool = False,
        page_size: int = 100,
        parallel: int = 4,
        migrate: bool = True,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry_after_cap: float = 60.0,
        retry_backoff: float = 0.5,
        max_time: float | None = None,
        on_page: Callable[[SyncResult], None] | None = None,
        on_migrate: Callable[[str], None] | None = None,
        limit: int | None = None,
        details: bool = True,
        details_concurrency: int = CONCURRENCY,
        details_max_jobs: int | None = None,
        details_max_bytes: int = MAX_BYTES,
        on_details: Callable[[DetailsResult], None] | None = None,
        checkpoint_log: str | Path | None = None,
        signing_key: str | Path | None = None,
        on_route: Callable[[str], None] | None = None,
    ) -> SyncResult | RoutesResult:
        """Copy new and changed jobs (all of them with `full`) into the archive.

        Takes the run lock (one sync per archive at a time), creates or migrates the schema
        (unless `migrate` is False), walks the API and records the run in `sync_runs`.

        Args:
            route: where and how to reach the gateway (`Portkey.from_env()` or `Portkey(...)`, synced
                as the route `default`, or a `Route`).
            routes: instead of `route`, several routes (`archiver.Route(name, Portkey(...))`), synced
                one after another under one lock; one failing does not stop the others. Returns a
                RoutesResult then (each route's SyncResult, or its error).
            full: walk the whole history instead of stopping at known jobs.
            page_size: jobs per request to ask for (every job is synced, whatever it is).
            parallel: with `full`, how many parts of an archived history to fetch at once (1: one
                walk from the head). Writing stays one page at a time in one thread.
            migrate: bring an older schema to the current one; False refuses it instead.
            timeout, max_retries, retry_after_cap, retry_backoff, max_time: the HTTP retry policy
                (seconds; see the README's "Faults" section). `max_time` bounds the whole run.
            on_page: called with the running totals after each page (a progress display).
            on_migrate: called with the old revision, before the walk, if the schema was migrated.
            limit: the old name of `page_size` (a DeprecationWarning); it never capped the jobs synced.
            details: then archive the details (events, checkpoints, files, result metrics) of
                every final job that lacks them (archiver/details.py); False skips them this run.
            details_concurrency: jobs whose details are fetched at once.
            details_max_jobs: fetch the details of at most this many jobs this run (None: all).
            details_max_bytes: the largest result file kept (a larger one is recorded, not kept).
            on_details: called with the details' running totals after each job.
            checkpoint_log: append the run's checkpoint (the audit chain's head, also in the run's
                row and `result.checkpoint`) to this file, kept where the archive's writers cannot
                rewrite it; `signing_key`: an Ed25519 private key (PEM) to sign it with.
            on_route: called with each route's name before its run.

        Returns:
            the run's SyncResult (counters, `run_id`, `partial` coverage, `migrated_from`).

        Raises:
            ConfigError: missing, out of range or refused settings, or an outdated schema with
                migrate=False.
            ApiError: the API failed after retries (pages written before are kept).
            DatabaseError: the archive is locked, full, read-only or unreachable.
            TryLater: another sync holds the lock, or the API asked to wait too long.
        """
        if limit is not None:
            warnings.warn("Archive.sync(limit=) is now page_size=", DeprecationWarning, stacklevel=2)
            page_size = limit
        check_sizes(
            page_size, parallel, max_retries, details_concurrency, details_max_jobs, details_max_bytes
        )
        policy = retry_policy(timeout, max_retries, retry_after_cap, retry_backoff, max_time)
        chosen = chosen_routes(route, routes)
        options: dict[str, Any] = {"full": full, "limit": page_size, "parallel": parallel, "on_page": on_page}
        options["details"] = (
            DetailOptions(True, details_concurrency, details_max_jobs, details_max_bytes) if details else None
        )
        options |= {"on_details": on_details, "keeping": checkpoints.keeping(checkpoint_log, signing_key)}
        engine = self.engine(write=True)
        with self._database_errors(), lock.run_lock(engine):
            migrated = db.ensure_schema(engine, migrate=migrate)
            if migrated and on_migrate:
                on_migrate(migrated)
            done = sync_routes(
                engine, chosen, policy, options, stop_at_error=routes is None, on_route=on_route
            )
        done.migrated_from = migrated
        if routes is not None:
            return done
        result = done.results[chosen[0].name]
        result.migrated_from = migrated
        return result

    def verify(
        self,
        checkpoint_log: str | Path | None = None,
        public_key: str | Path | None = None,
        on_progress: Callable[[Verdict], None] | None = None,
    ) -> Verdict:
        """Recompute the audit chain and check the archive against it (archiver/verify.py says
        what is checked). `checkpoint_log`: the checkpoints kept elsewhere, each checked against
        the chain; `public_key`: the Ed25519 public key (PEM) every checkpoint must be signed by;
        `on_progress`: called with the verdict so far every 100,000 links (a progress display).
        The verdict is recorded in verify_runs when the archive is writable.

        Raises ConfigError (no archive, an unreadable log or key), DatabaseError."""
        with self._database_errors():
            return check_archive(
                self.engine(),
                self.engine(write=True),
                Path(checkpoint_log) if checkpoint_log else None,
                Path(public_key) if public_key else None,
                on_progress,
            )

    def upgrade(self) -> str | None:
        """Apply pending schema migrations under the run lock; returns the old revision if it moved.

        Raises DatabaseError or TryLater (a sync is running)."""
        engine = self.engine(write=True)
        with self._database_errors(), lock.run_lock(engine):
            return db.ensure_schema(engine, migrate=True)

    def revision(self) -> str | None:
        """The schema revision of the archive, None if it holds none yet. Raises ConfigError
        if there is no archive file, DatabaseError if it cannot be read."""
        with self._database_errors(), self.engine().connect() as conn:
            return db.current(conn)

    def report_table(self, name: str, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like `report` (same `name` and `params`, same errors raised), as (column names, row
        tuples) in the report's order."""
        with self.report_rows(name, **params) as (columns, rows):
            return columns, list(rows)

    @contextmanager
    def report_rows(self, name: str, **params: Any) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
        """Like `report_table` (same `name` and `params`, same errors raised), with the rows an
        iterator read as it is consumed, valid inside the `with` block."""
        values = reports.resolve(name, {k: str(v) for k, v in params.items() if v is not None})
        with self._read() as conn, reports.stream_report(conn, name, values) as (columns, rows):
            yield columns, reports.known_job(conn, values, rows)

    def report(self, name: str, **params: Any) -> Rows:
        """Run the named report from sql/ (`reports.names()` lists them) and return its rows.

        Args:
            name: the report, e.g. "monthly_activity".
            params: its parameters, e.g. since="2026-01-01" (a date or ISO time, UTC unless it
                says otherwise), until=..., job_id=...; each has a default unless it is required.

        Raises:
            ConfigError: an unknown report, a missing or malformed parameter, `since` not before
                `until`, a `job_id` the archive does not hold, or no archive yet.
            DatabaseError: the archive cannot be read.
        """
        columns, rows = self.report_table(name, **params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def metrics(self, job_id: str) -> Rows:
        """One job's metrics by step, every column of its result file(s), e.g.
        `[{"step": 1, "train_loss": 1.52, "train_accuracy": 0.0}, ...]`; a step lacks the metrics
        its row left empty. Empty until the job's details are archived, or if it has no result file.

        Args:
            job_id: the job's id, e.g. "ftjob-abc123".

        Raises ConfigError if there is no archive yet, DatabaseError if it cannot be read."""
        return self.read(lambda conn: metrics_by_step(conn, job_id))

    def query_table(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like `query` (same `sql` and `params`, same errors raised), as (column names, row tuples)."""
        with self.query_rows(sql, params) as (columns, rows):
            return columns, list(rows)

    @contextmanager
    def query_rows(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
        """Like `query_table` (same `sql` and `params`, same errors raised), with the rows as an
        iterator read from the database as it is consumed (an export of any size in little
        memory), valid inside the `with` block."""
        if not sql.strip():
            raise ConfigError("give one SQL statement")
        with (
            self._database_errors(),
            self.engine().connect() as conn,
            reports.stream_query(conn, sql, params) as (columns, rows),
        ):
            yield columns, rows

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Rows:
        """Run one read-only SQL statement `sql`; a statement that would write fails, changing nothing.

        Args:
            sql: one statement; `:name` marks a bound parameter.
            params: the values of its parameters by name, e.g. {"model": "gpt-4o-mini"}.

        Raises ConfigError for an empty, failing or writing statement or a missing parameter,
        DatabaseError if the archive cannot be read."""
        columns, rows = self.query_table(sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def tables_table(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like `tables` (same errors raised), as (column names, row tuples)."""
        return ["name", "kind", "columns"], [tuple(t.values()) for t in self.tables()]

    def tables(self) -> Rows:
        """The archive's tables, then its views, each with its columns in order: what to query.

        Raises ConfigError if there is no archive yet, DatabaseError if it cannot be read."""

        return self.read(reports.listing)

    def last_run(self, route: str | None = None) -> dict[str, Any] | None:
        """The newest sync_runs row (of `route`, if given), whatever its outcome (None before the
        first sync). Raises ConfigError if there is no archive file, DatabaseError if it cannot be read."""
        with self._database_errors(), self.engine().connect() as conn:
            row = reports.last_run(conn, route=route) if db.current(conn) else None
        return row._asdict() if row else None

    def routes(self, configured: dict[str, str | None] | None = None) -> Rows:
        """Each route (`configured`: name -> provider, those of a config file first; then every
        route the archive holds runs or jobs of): provider, jobs it lists, last run, coverage.

        Raises ConfigError if there is no archive yet, DatabaseError if it cannot be read."""
        return self.read(lambda conn: health.routes_listing(conn, configured or {}))

    def runs(self, limit: int = 20) -> Rows:
        """The newest `limit` sync runs, newest first (the `sync_health` report). Raises as `report`."""
        return self.report("sync_health", limit=limit)

    def status(self, max_age: str | float | None = None) -> Health:
        """Is the archive healthy? FAILED if the last run failed, was interrupted or abandoned, or
        is marked running while no sync holds the lock; STALE if no sync succeeded (within
        `max_age`: seconds, or text like "90m", "2h", "1d"); PARTIAL if the archive knows it is
        incomplete (coverage the route cannot reach, a gap a cut-off run left, in-flight jobs whose
        refresh keeps failing: each said in `coverage`); else OK. Raises ConfigError for a
        malformed max_age or no archive file, DatabaseError if it cannot be read."""
        with self._database_errors():
            return health.status(self.engine(), parse_age(max_age) if isinstance(max_age, str) else max_age)
