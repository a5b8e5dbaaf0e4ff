"""Bulk writes handed straight to the driver: executemany for SQLite, array parameters for PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Insert, Table, insert
from sqlalchemy.exc import DBAPIError

from archiver.db import to_json
from archiver.models import jobs, metadata

JSONObj = dict[str, Any]
KEEP_ON_UPDATE = ("id", "first_seen_at")  # the jobs upsert leaves these as they were


def json_or_null(value: Any) -> str | None:
    """For a JSON(none_as_null=True) column: None is SQL NULL, not the JSON text null."""
    return None if value is None else to_json(value)


def executemany(conn: Connection, table: Table, rows: list[JSONObj], upsert: bool = False) -> None:
    """Bulk INSERT (or, with `upsert`, the jobs upsert) of rows that all have the same keys.

    SQLAlchemy's per-row parameter processing was a third of a first sync's time; here parameters
    are gathered column by column (C-level `map`/`zip`), JSON columns serialized once, and the
    statement compiled once per table and backend. PostgreSQL takes each column as one array
    (`INSERT ... SELECT FROM unnest(...)`): one statement per table, so that inside `pipeline`
    a page's tables cost a single round trip. (COPY is as fast on the server, but each COPY is two
    round trips of its own: COPY cannot run in a pipeline.)
    """
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    sql, keys = (unnest_insert if postgres else compiled_insert)(
        conn.dialect, table.name, tuple(rows[0]), upsert
    )
    json_columns = {c.name: c.type.none_as_null for c in table.c if isinstance(c.type, JSON)}
    columns = [
        list(map(json_or_null if json_columns[k] else to_json, map(itemgetter(k), rows)))
        if k in json_columns
        else map(itemgetter(k), rows)
        for k in keys
    ]
    if postgres:
        conn.exec_driver_sql(sql, tuple(list(c) for c in columns))  # a tuple: one execution
    else:
        conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


@contextmanager
def pipeline(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, send the statements run inside without waiting for each result: they cost
    one round trip together, at the end (psycopg's pipeline mode). Nothing inside may read a
    result. A database error surfaces at the end, as SQLAlchemy's DBAPIError like any other."""
    if conn.dialect.name != "postgresql":
        yield
        return
    driver = conn.connection.driver_connection
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            yield
    except conn.dialect.loaded_dbapi.Error as e:
        raise DBAPIError.instance(
            None, None, e, conn.dialect.loaded_dbapi.Error, hide_parameters=True, dialect=conn.dialect
        ) from None


@cache
def upsert_jobs_statement(dialect: str) -> Insert:
    if dialect == "postgresql":  # imported here: a SQLite run need not load the PostgreSQL dialect
        from sqlalchemy.dialects import postgresql as backend
    else:
        from sqlalchemy.dialects import sqlite as backend  # type: ignore[no-redef]
    stmt = backend.insert(jobs)
    return stmt.on_conflict_do_update(
        index_elements=[jobs.c.id],
        set_={c.name: stmt.excluded[c.name] for c in jobs.c if c.name not in KEEP_ON_UPDATE},
    )


@cache
def unnest_insert(
    dialect: Dialect, table: str, keys: tuple[str, ...], upsert: bool
) -> tuple[str, tuple[str, ...]]:
    """INSERT ... SELECT FROM unnest(one array per column) for psycopg, binary (%b: text would
    quote every element); and the order of its parameters. The jobs upsert is ON CONFLICT."""
    quote = dialect.identifier_preparer.quote
    columns = metadata.tables[table].c
    arrays = ", ".join(f"%b::{columns[k].type.compile(dialect=dialect)}[]" for k in keys)
    sql = f"INSERT INTO {quote(table)} ({', '.join(map(quote, keys))}) SELECT * FROM unnest({arrays})"
    if upsert:
        changes = ", ".join(f"{quote(k)} = excluded.{quote(k)}" for k in keys if k not in KEEP_ON_UPDATE)
        sql += f" ON CONFLICT (id) DO UPDATE SET {changes}"
    return sql, keys


@cache
def compiled_insert(
    dialect: Dialect, table: str, keys: tuple[str, ...], upsert: bool
) -> tuple[str, tuple[str, ...]]:
    """SQL text with positional parameters (sqlite3), and the order of its parameters."""
    stmt = upsert_jobs_statement(dialect.name) if upsert else insert(metadata.tables[table])
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    assert compiled.positiontup is not None, "bulk inserts by executemany are for sqlite3's ? parameters"
    return str(compiled), tuple(compiled.positiontup)
