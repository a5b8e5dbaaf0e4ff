"""Named reports from the sql/ files and ad-hoc read-only queries (their output: render.py)."""

import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, inspect, select, text

from archiver.db import resource_path
from archiver.errors import ConfigError
from archiver.models import jobs, sync_runs

Table = tuple[list[str], list[tuple[Any, ...]]]
BIND = re.compile(r"(?<![:\w]):(\w+)")
ALWAYS = ("since", "until", "now", "limit")  # a library caller may pass these to any report
MAX_INT = 2**63 - 1  # the largest integer both backends bind
# One declared parameter a line, after a `-- Parameters:` line: `--   name type required: help`
# or `--   name type default VALUE: help`; the types are text, int (0 or more) and time.
PARAM = re.compile(r"--\s+(\w+)\s+(text|int|time)\s+(?:required|default\s+(\S+))\s*:\s*(.+)")
TYPES = ("text", "int", "time")


@dataclass(frozen=True)
class Param:
    """A report parameter as its sql file declares it; `default` is None when it is required."""

    name: str
    type: str
    default: str | None
    help: str

    @property
    def required(self) -> bool:
        return self.default is None

    def usage(self) -> str:
        if self.required:
            return f"{self.name} (required)"
        return f"[{self.name}={self.default}]" if self.type != "time" else f"[{self.name}]"


@cache  # the sql/ files ship with the package: read once per process
def names() -> list[str]:
    return sorted(p.stem for p in resource_path("sql").glob("*.sql"))


@cache
def load(name: str) -> str:
    if name not in names():
        raise ConfigError(f"no report named {name!r}; the reports are: {', '.join(names())}")
    return (resource_path("sql") / f"{name}.sql").read_text()


def describe(name: str) -> str:
    """The report's question: its header comment up to the Parameters line."""
    lines = []
    for line in load(name).splitlines():
        if not line.startswith("--") or line.startswith("-- Parameters"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines)


def parameters(name: str) -> list[Param]:
    """The parameters declared in the report's header, in order."""
    header = [line for line in load(name).splitlines() if line.startswith("--")]
    start = next((i for i, line in enumerate(header) if line.startswith("-- Parameters:")), len(header))
    declared = []
    for line in header[start + 1 :]:
        match = PARAM.fullmatch(line.strip())
        if not match:
            raise ConfigError(f"sql/{name}.sql: cannot read the parameter declaration {line!r}")
        declared.append(Param(*match.groups()))
    return declared


def convert(param: Param, value: str, now: float | None = None) -> Any:
    """A parameter's text as the value to bind, or ConfigError naming the parameter."""
    if param.type == "int":
        if not re.fullmatch(r"\s*\+?\d+\s*", value):
            raise ConfigError(f"parameter {param.name}: {value!r} is not a whole number (0 or more)")
        if int(value) > MAX_INT:
            raise ConfigError(f"parameter {param.name}: {value} is too large (at most 2**63 - 1)")
        return int(value)
    if param.type == "time":
        if value == "now":
            return int(time.time() if now is None else now)
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"parameter {param.name}: {value!r} is not a date like 2026-01-31 or 2026-01-31T12:00 "
                "(UTC unless it says otherwise)"
            ) from None
        return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    return value


def resolve(name: str, given: dict[str, str], now: float | None = None) -> dict[str, Any]:
    """Text parameters (from --param) checked against the report's declarations, defaults filled in.

    Every error is a ConfigError naming the parameter, raised before any database is opened.
    """
    declared = {p.name: p for p in parameters(name)}
    unknown = sorted(given.keys() - declared.keys())
    if unknown:
        takes = ", ".join(declared) or "none"
        raise ConfigError(f"report {name} takes no parameter {', '.join(unknown)} (its parameters: {takes})")
    values = {}
    for p in declared.values():
        value = given.get(p.name, p.default)
        if value is None:
            raise ConfigError(f"report {name} needs --param {p.name}=...: {p.help}")
        values[p.name] = convert(p, value, now)
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        raise ConfigError(
            f"report {name}: since ({given.get('since', 'all time')}) is not before until "
            f"({given.get('until', 'all time')}): no job could match"
        )
    return values


def run_report(conn: Connection, name: str, params: dict[str, Any] | None = None) -> Table:
    """Run sql/<name>.sql with its named binds: `params` as values to bind (see resolve() for text);
    an optional parameter left out takes its declared default."""
    with stream_report(conn, name, params) as (columns, rows):
        return columns, list(rows)


@contextmanager
def stream_report(
    conn: Connection, name: str, params: dict[str, Any] | None = None
) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    """Like run_report, the rows read from the database as they are consumed (on PostgreSQL
    through a server-side cursor), inside the `with` block: a report of any length in little memory."""
    sql = load(name)
    binds = set(BIND.findall(sql))
    values = {p.name: convert(p, p.default) for p in parameters(name) if p.default is not None}
    values.update(params or {})
    missing = sorted(binds - values.keys())
    if missing:
        raise ConfigError(f"report {name} needs " + " ".join(f"--param {m}=..." for m in missing))
    unknown = sorted(values.keys() - binds - set(ALWAYS))
    if unknown:
        raise ConfigError(f"report {name} takes no parameter {', '.join(unknown)}")
    result = conn.execution_options(stream_results=True).execute(text(sql), {k: values[k] for k in binds})
    try:
        yield list(result.keys()), (tuple(row) for row in result)
    finally:
        result.close()


def run_query(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Table:
    """One ad-hoc statement, read-only (see stream_query), its rows in a list."""
    with stream_query(conn, sql, params) as (columns, rows):
        return columns, list(rows)


@contextmanager
def stream_query(
    conn: Connection, sql: str, params: dict[str, Any] | None = None
) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    """One ad-hoc statement in a transaction that stays read-only: a write fails and changes nothing.
    The rows come from the database as they are consumed, inside the `with` block. `:name` in the
    SQL binds `params[name]`.

    SQLite: the driver refuses a second statement; an authorizer refuses ATTACH, DETACH and
    PRAGMA assignments (which would create files or change settings) on top of `query_only`.
    PostgreSQL: the extended protocol refuses a second statement; the transaction is made read-only
    and has taken its snapshot first, so `SET TRANSACTION READ WRITE` cannot undo it.
    """
    if not conn.in_transaction():
        conn.begin()  # never committed: closing the connection rolls back
    dbapi = conn.connection.driver_connection
    try:
        if conn.dialect.name == "sqlite":
            with sqlite_query(dbapi, sql, params) as table:
                yield table
        else:
            with postgresql_query(dbapi, pyformat(conn, sql, params), params) as table:
                yield table
    except conn.dialect.loaded_dbapi.Error as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise ConfigError(f"query failed: {lines[0]}") from None


def pyformat(conn: Connection, sql: str, params: dict[str, Any] | None) -> str:
    """`:name` binds as psycopg writes them (`%(name)s`, a literal % doubled); as is without params."""
    if params is None:
        return sql  # without parameters psycopg sends the text as it is: % stays literal
    compiled = text(sql).compile(dialect=conn.dialect)
    missing = sorted(set(compiled.params) - params.keys())
    if missing:
        raise ConfigError("query needs " + " ".join(f"--param {m}=..." for m in missing))
    return str(compiled)


# Reading pragmas that take a table or index name as their argument; any other PRAGMA with a value sets it.
READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo"}
READ_PRAGMAS |= {"foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"}
SQLITE_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


@contextmanager
def sqlite_query(
    dbapi: Any, sql: str, params: dict[str, Any] | None
) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    refused: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
        if action in SQLITE_READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg2 is None or arg1 in READ_PRAGMAS):
            return sqlite3.SQLITE_OK
        refused.append(
            f"PRAGMA {arg1}" if action == sqlite3.SQLITE_PRAGMA else SQLITE_ACTIONS.get(action, "writing")
        )
        return sqlite3.SQLITE_DENY

    dbapi.set_authorizer(authorize)  # until the rows are read: SQLite may prepare the statement again
    try:
        try:
            cursor = dbapi.execute(sql, params or ())
        except sqlite3.DatabaseError as e:
            if refused:
                raise ConfigError(f"query failed: {refused[0]} is not allowed in a read-only query") from None
            if "binding" in str(e):
                raise ConfigError(
                    f"query failed: {e} (give each :name a value: --param name=VALUE)"
                ) from None
            raise
        if cursor.description is None:
            yield [], iter(())
        else:
            yield [d[0] for d in cursor.description], iter(cursor)
    finally:
        dbapi.set_authorizer(None)


SQLITE_ACTIONS = {sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH"}


PG_READ_ONLY = "current_setting('transaction_read_only'), current_setting('default_transaction_read_only')"


@contextmanager
def postgresql_query(
    dbapi: Any, sql: str, params: dict[str, Any] | None
) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    with dbapi.cursor() as cursor:
        # set_config(..., true) is SET TRANSACTION READ ONLY, and being a query it takes the snapshot,
        # after which PostgreSQL refuses to make the transaction read-write again.
        cursor.execute(f"SELECT set_config('transaction_read_only', 'on', true), {PG_READ_ONLY}")
        before = cursor.fetchone()
        rows = cursor.stream(sql, params)  # the extended protocol (one statement), row by row
        first = next(rows, None)
        if first is None and cursor.description is None:
            # an empty stream tells no column names: ask again, all at once (there are no rows)
            cursor.execute(sql, params, prepare=True)
            rows = iter(cursor.fetchall())
        columns = [d.name for d in cursor.description] if cursor.description else []
        yield columns, itertools.chain([first] if first is not None else [], rows)
        with dbapi.cursor() as check:
            check.execute(f"SELECT 'on', {PG_READ_ONLY}")
            if check.fetchone() != before:
                raise ConfigError("query failed: the statement changed the read-only settings")


def last_run(conn: Connection, status: str | None = None, route: str | None = None) -> Row[Any] | None:
    query = select(sync_runs).order_by(sync_runs.c.id.desc()).limit(1)
    if status:
        query = query.where(sync_runs.c.status == status)
    if route is not None:
        query = query.where(sync_runs.c.route == route)
    return conn.execute(query).first()


def known_job(conn: Connection, values: dict[str, Any], rows: Iterator[Any]) -> Iterator[Any]:
    """A report's `rows`; none because its `job_id` names no archived job: ConfigError instead."""
    first = next(rows, None)
    if first is None and "job_id" in values and not job_exists(conn, values["job_id"]):
        raise ConfigError(f"no job {values['job_id']!r} in the archive (archiver query can search it)")
    return itertools.chain([] if first is None else [first], rows)


def job_exists(conn: Connection, job_id: str) -> bool:
    return conn.execute(select(jobs.c.id).where(jobs.c.id == job_id)).first() is not None


def utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def listing(conn: Connection) -> list[dict[str, str]]:
    """The archive's tables, then its views, each with its columns in order."""
    schema = inspect(conn)
    out = []
    for kind, found in (("table", schema.get_table_names()), ("view", schema.get_view_names())):
        for name in sorted(n for n in found if n != "alembic_version"):
            columns = ", ".join(c["name"] for c in schema.get_columns(name))
            out.append({"name": name, "kind": kind, "columns": columns})
    return out
