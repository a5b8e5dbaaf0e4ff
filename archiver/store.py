"""Jobs as rows (pure mappings) and the per-page write: upsert, replace children, append history."""

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Insert, Table, delete, func, insert, select, update

from archiver.db import to_json
from archiver.models import (
    CHILD_TABLES,
    errors,
    integrations,
    job_history,
    jobs,
    metadata,
    rejected_items,
    result_files,
    sync_runs,
    sync_state,
    tags,
)

log = logging.getLogger(__name__)

JSONObj = dict[str, Any]
INT_FIELDS = ("created_at", "finished_at", "estimated_finish", "trained_tokens", "seed")
TEXT_FIELDS = (
    "object",
    "status",
    "model",
    "fine_tuned_model",
    "organization_id",
    "training_file",
    "validation_file",
    "user_provided_suffix",
)
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
INT64 = range(-(2**63), 2**63)
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quiet: bool = False  # every job already archived, unchanged and terminal: the incremental stop signal


def content_hash(job: JSONObj) -> str:
    return hashlib.sha256(to_json(job, sort_keys=True).encode(errors="surrogatepass")).hexdigest()


def clean_text(value: str) -> str:
    """PostgreSQL text holds no NUL and no lone surrogate: typed columns get U+FFFD there; `raw` keeps all."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


Warn = Callable[[str, Any], None]


def text(obj: Any, key: str, warn: Warn) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value)
    warn(key, value)
    return None


def integer(obj: JSONObj, key: str, warn: Warn) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value in INT64:
        return value
    warn(key, value)
    return None


def hyperparameter(value: Any, key: str, warn: Warn) -> str | None:
    """`auto` or the number as sent, as text."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    warn(key, value)
    return None


def warner(job_id: str) -> Warn:
    def warn(key: str, value: Any) -> None:
        what = "is beyond 64 bits" if type(value) is int else f"has type {type(value).__name__}"
        log.warning("job %s: %s %s; column left NULL (raw keeps it)", job_id, key, what)

    return warn


def job_row(job: JSONObj) -> JSONObj:
    """The typed columns of `jobs`; a wrongly typed field becomes NULL with a warning."""
    warn = warner(job["id"])
    row: JSONObj = {"id": job["id"]}
    for key in TEXT_FIELDS:  # the common case inline: this runs for every field of every job
        v = job.get(key)
        row[key] = (
            v if v is None or (type(v) is str and v.isascii() and "\x00" not in v) else text(job, key, warn)
        )
    for key in INT_FIELDS:
        v = job.get(key)
        row[key] = v if v is None or (type(v) is int and -(2**63) <= v < 2**63) else integer(job, key, warn)
    method = job.get("method") if isinstance(job.get("method"), dict) else {}
    row["method_type"] = text(method, "type", warn)
    hp = (method.get(row["method_type"] or "") or {}).get("hyperparameters") if method else None
    if not isinstance(hp, dict):
        hp = job.get("hyperparameters")
    if not isinstance(hp, dict):
        hp = {}
    for key in HYPERPARAMETERS:
        row[key] = hyperparameter(hp.get(key), key, warn)
    row["metadata"] = job.get("metadata")
    row["raw"] = job
    return row


def error_rows(job: JSONObj) -> list[JSONObj]:
    """A row only for a real error: the API also sends null, {} and all-null members."""
    err = job.get("error")
    if not isinstance(err, dict) or (err.get("code") is None and err.get("message") is None):
        return []
    warn = warner(job["id"])
    return [{"job_id": job["id"], **{k: text(err, k, warn) for k in ("code", "message", "param")}}]


def result_file_rows(job: JSONObj) -> list[JSONObj]:
    files = job.get("result_files")
    if not isinstance(files, list):
        if files is not None:
            warner(job["id"])("result_files", files)
        return []
    warn = warner(job["id"])
    return [
        {"job_id": job["id"], "position": i, "file_id": text({"f": f}, "f", warn)}
        for i, f in enumerate(files)
    ]


def integration_rows(job: JSONObj) -> tuple[list[JSONObj], list[JSONObj]]:
    """Rows for `integrations` and for their W&B `tags`."""
    items = job.get("integrations")
    if not isinstance(items, list):
        if items is not None:
            warner(job["id"])("integrations", items)
        return [], []
    warn = warner(job["id"])
    rows, tag_rows = [], []
    for i, item in enumerate(items):
        wandb = item.get("wandb") if isinstance(item, dict) else None
        rows.append(
            {
                "job_id": job["id"],
                "position": i,
                "type": text(item, "type", warn),
                "wandb_project": text(wandb, "project", warn),
                "wandb_name": text(wandb, "name", warn),
                "wandb_entity": text(wandb, "entity", warn),
                "settings": item,
            }
        )
        tag_list = wandb.get("tags") if isinstance(wandb, dict) else None
        for j, tag in enumerate(tag_list if isinstance(tag_list, list) else []):
            tag_rows.append(
                {
                    "job_id": job["id"],
                    "integration_position": i,
                    "position": j,
                    "tag": text({"tag": tag}, "tag", warn),
                }
            )
    return rows, tag_rows


@cache
def upsert_jobs_statement(dialect: str) -> Insert:
    if dialect == "postgresql":  # imported here: a SQLite run need not load the PostgreSQL dialect
        from sqlalchemy.dialects import postgresql as backend
    else:
        from sqlalchemy.dialects import sqlite as backend  # type: ignore[no-redef]
    stmt = backend.insert(jobs)
    keep = {"id", "first_seen_at"}
    return stmt.on_conflict_do_update(
        index_elements=[jobs.c.id],
        set_={c.name: stmt.excluded[c.name] for c in jobs.c if c.name not in keep},
    )


def stored_hashes(conn: Connection, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):  # old SQLite builds allow 999 variables
        chunk = ids[start : start + 500]
        rows = conn.execute(select(jobs.c.id, jobs.c.content_hash).where(jobs.c.id.in_(chunk)))
        found.update((job_id, h) for job_id, h in rows)
    return found


def upsert_page(conn: Connection, page: Iterable[JSONObj], run_id: int, now: float) -> PageCounts:
    """Write one page of jobs: only new or changed jobs are touched; unchanged ones write nothing."""
    by_id = {job["id"]: job for job in page}  # last wins: PostgreSQL refuses a batch touching a row twice
    hashes = {job_id: content_hash(job) for job_id, job in by_id.items()}
    stored = stored_hashes(conn, list(by_id))
    changed = [job_id for job_id, h in hashes.items() if stored.get(job_id) != h]
    counts = PageCounts(unchanged=len(by_id) - len(changed))
    if not changed:
        counts.quiet = all(job.get("status") in TERMINAL for job in by_id.values())
        return counts
    updated = [job_id for job_id in changed if job_id in stored]
    counts.updated, counts.inserted = len(updated), len(changed) - len(updated)
    seen = {"last_seen_at": now, "first_seen_at": now, "last_sync_run_id": run_id}
    job_rows: list[JSONObj] = []
    children: dict[Table, list[JSONObj]] = {t: [] for t in CHILD_TABLES}
    for job_id in changed:
        job = by_id[job_id]
        job_rows.append({**job_row(job), **seen, "content_hash": hashes[job_id]})
        children[errors] += error_rows(job)
        children[result_files] += result_file_rows(job)
        integration, tag = integration_rows(job)
        children[integrations] += integration
        children[tags] += tag
    if updated:
        for table in CHILD_TABLES:
            conn.execute(delete(table).where(table.c.job_id.in_(updated)))
    executemany(conn, jobs, job_rows, upsert=True)
    for table in reversed(CHILD_TABLES):  # parents before children
        executemany(conn, table, children[table])
    history = [
        {
            "job_id": job_id,
            "sync_run_id": run_id,
            "observed_at": now,
            "status": row["status"],
            "content_hash": row["content_hash"],
            "raw": row["raw"],
        }
        for job_id, row in zip(changed, job_rows, strict=True)
    ]
    executemany(conn, job_history, history)
    return counts


def executemany(conn: Connection, table: Table, rows: list[JSONObj], upsert: bool = False) -> None:
    """Bulk INSERT (or the jobs upsert) handed straight to the driver.

    SQLAlchemy's per-row parameter processing was a third of a first sync's time; here the
    statement is compiled once per table and backend, and JSON columns are serialized once.
    """
    if not rows:
        return
    sql, order, json_columns = compiled_insert(conn.dialect, table.name, tuple(rows[0]), upsert)
    if order is None:  # named parameters (psycopg)
        params: list[Any] = [{**row, **{k: to_json(row[k]) for k in json_columns}} for row in rows]
    else:  # positional (sqlite3): one tuple per row, JSON serialized on the way
        getters = [(k, k in json_columns) for k in order]
        params = [tuple(to_json(row[k]) if js else row[k] for k, js in getters) for row in rows]
    conn.exec_driver_sql(sql, params)


@cache
def compiled_insert(
    dialect: Dialect, table: str, keys: tuple[str, ...], upsert: bool
) -> tuple[str, tuple[str, ...] | None, tuple[str, ...]]:
    """SQL text, parameter order (None: named parameters) and the JSON columns, for these keys."""
    stmt = upsert_jobs_statement(dialect.name) if upsert else insert(metadata.tables[table])
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    json_columns = tuple(k for k in keys if isinstance(metadata.tables[table].c[k].type, JSON))
    return str(compiled), order, json_columns


def start_run(conn: Connection, mode: str, base_url: str, now: float) -> int:
    row = {"started_at": now, "status": "running", "mode": mode, "base_url": base_url}
    return conn.execute(insert(sync_runs).values(row).returning(sync_runs.c.id)).scalar_one()


def save_run(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))


@dataclass
class State:
    history_complete: bool = False
    resume_after: str | None = None


def load_state(conn: Connection) -> State:
    row = conn.execute(select(sync_state.c.history_complete, sync_state.c.resume_after)).first()
    return State(*row) if row else State()


def save_state(conn: Connection, now: float, **values: Any) -> None:
    conn.execute(update(sync_state).where(sync_state.c.id == 1).values(updated_at=now, **values))


def in_flight(conn: Connection) -> dict[str, int | None]:
    """Archived jobs not yet in a terminal status (any status the API adds counts as in flight)."""
    query = select(jobs.c.id, jobs.c.created_at).where(
        jobs.c.status.is_(None) | jobs.c.status.not_in(sorted(TERMINAL))
    )
    return {job_id: created for job_id, created in conn.execute(query)}


def count_created_between(conn: Connection, oldest: int, newest: int) -> int:
    query = select(func.count()).where(jobs.c.created_at >= oldest, jobs.c.created_at <= newest)
    return conn.execute(query).scalar_one()


def split_items(items: list[Any]) -> tuple[list[JSONObj], list[tuple[int, str, Any]]]:
    """Jobs, and the items that cannot be archived as one: (position, reason, item)."""
    good, bad = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            bad.append((i, f"not a JSON object but {type(item).__name__}", item))
        elif not isinstance(item.get("id"), str) or not item["id"]:
            bad.append((i, "no id" if item.get("id") is None else "id is not a non-empty string", item))
        else:
            good.append(item)
    return good, bad


def quarantine(
    conn: Connection, bad: list[tuple[int, str, Any]], run_id: int, after: str | None, now: float
) -> None:
    rows = [
        {
            "sync_run_id": run_id,
            "observed_at": now,
            "page_after": after,
            "position": i,
            "reason": reason,
            "raw": item,
        }
        for i, reason, item in bad
    ]
    conn.execute(insert(rejected_items), rows)
