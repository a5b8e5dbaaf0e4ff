"""The audit trail: every appended record is a link of one hash chain.

The records are the rows of job_history (each observed version of a job), of sync_runs (each run,
once it has ended) and of detail_history (each time a job's details were archived). Each carries:

    seq     its place in the chain: 1, 2, 3, ... with no gap, across the three tables
    record  the exact text that was hashed: RFC 8785 canonical JSON of
            {"table": ..., "seq": ..., "prev": <the previous link's hash>, <the row's fields>}
            where a job's JSON is in as "raw_sha256", the SHA-256 of the exact text stored in
            job_history.raw (in jobs.raw for the job's newest row: history_raw), the job's rows
            as written with it as "typed_sha256" (store.typed_digest; not in records written
            before it), and a job's details as "details_sha256" (details_digest)
    hash    SHA-256 of `record` (UTF-8), lower-case hex; the first link's prev is 64 zeros

chain_head holds the archive's id and the newest link. It advances in the transaction that writes
the links, by compare-and-set (`UPDATE ... WHERE seq = <the seq read>`): a second writer that read
the same head updates nothing and its transaction is rolled back, so the chain cannot fork.
Checking it (archiver/verify.py) needs nothing of archiver: see the README's auditor's script.
"""

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, cast, func, select, update
from sqlalchemy.types import Text

from archiver.canonical import canonical_json, flat_canonical_json
from archiver.detail_models import (
    file_contents,
    files,
    job_checkpoints,
    job_details,
    job_events,
    job_metrics,
    rejected_details,
)
from archiver.errors import DatabaseError
from archiver.models import chain_head, detail_history, job_history, jobs, result_files, sync_runs

JSONObj = dict[str, Any]
GENESIS = "0" * 64

# What a link records of its row, by table; a job's JSON and its details go in as digests.
HISTORY_FIELDS = ("job_id", "sync_run_id", "observed_at", "status", "content_hash", "observed_via")
RUN_FIELDS_0011 = (
    *("id", "started_at", "finished_at", "status", "mode", "base_url", "error", "pages", "requests"),
    *("jobs_seen", "jobs_inserted", "jobs_updated", "jobs_unchanged", "jobs_rejected"),
)
RUN_FIELDS = (*RUN_FIELDS_0011, "route")  # since 0012
# A field a record leaves out when it holds this value: a run of the route `default` records what
# runs recorded before routes existed (so 0011's rebuilt chain and older records stay true).
IMPLIED = {"route": "default"}
DETAIL_FIELDS = ("job_id", "sync_run_id", "written_at", "details_sha256")


class Forked(DatabaseError):
    """Another writer advanced the chain since this one read its head."""


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def link(conn: Connection, table: str, rows: list[JSONObj]) -> list[JSONObj]:
    """The chain columns (seq, record, hash) of these rows, appended in order after the head,
    which advances to the last of them in the caller's transaction."""
    if not rows:
        return []
    seq, prev = conn.execute(select(chain_head.c.seq, chain_head.c.hash)).one()
    first, links = seq, []
    for row in rows:
        seq += 1
        record = flat_canonical_json({"table": table, "seq": seq, "prev": prev, **row})
        prev = sha256(record)
        links.append({"seq": seq, "record": record, "hash": prev})
    moved = conn.execute(
        update(chain_head).where(chain_head.c.seq == first).values(seq=seq, hash=prev, updated_at=time.time())
    )
    if moved.rowcount != 1:
        raise Forked("another writer extended the audit chain meanwhile; this transaction was rolled back")
    return links


def history_links(conn: Connection, versions: list[JSONObj], digests: Sequence[str | None] = ()) -> None:
    """Add the chain columns to these job_history rows (their `raw` is the exact text stored),
    each recording the digest of its job's rows as written (`digests`, store.typed_digest; none
    for the rows migration 0011 links, or where orjson could not write them)."""
    fields = [{k: v[k] for k in HISTORY_FIELDS} | {"raw_sha256": sha256(v["raw"])} for v in versions]
    for row, digest in zip(fields, digests, strict=False):
        if digest is not None:
            row["typed_sha256"] = digest
    for version, chained in zip(versions, link(conn, "job_history", fields), strict=True):
        version.update(chained)


def seal_runs(conn: Connection, ids: list[int], fields: tuple[str, ...] = RUN_FIELDS) -> None:
    """Chain these ended runs' rows as they now are (`fields`: the columns the schema has)."""
    if not ids:
        return
    query = select(*(sync_runs.c[k] for k in fields)).where(
        sync_runs.c.id.in_(ids), sync_runs.c.seq.is_(None)
    )
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(sync_runs.c.id))]
    said = [{k: v for k, v in row.items() if k not in IMPLIED or IMPLIED[k] != v} for row in rows]
    chained = link(conn, "sync_runs", said)
    if chained:
        stmt = update(sync_runs).where(sync_runs.c.id == bindparam("run_id"))
        conn.execute(stmt, [c | {"run_id": r["id"]} for r, c in zip(rows, chained, strict=True)])


def append_details(conn: Connection, job_id: str, run_id: int | None, now: float) -> None:
    """Chain the job's details as they now are in the archive (read back: what verify reads).
    The record names the files and contents digested: those of the files the job names that the
    archive holds now (another job may be fetching a file they share; the job's row may change)."""
    named = select(result_files.c.file_id).where(result_files.c.job_id == job_id)
    job = conn.execute(select(jobs.c.training_file, jobs.c.validation_file).where(jobs.c.id == job_id)).one()
    ids = sorted({*conn.execute(named).scalars(), *job} - {None})
    held = [
        sorted(conn.execute(select(key).where(key.in_(ids))).scalars())
        for key in (files.c.id, file_contents.c.file_id)
    ]
    row = {"job_id": job_id, "sync_run_id": run_id, "written_at": now}
    row["details_sha256"] = details_digest(conn, job_id, *held)
    (chained,) = link(conn, "detail_history", [row | {"files": held[0], "contents": held[1]}])
    conn.execute(detail_history.insert().values(row | chained))


def details_digest(conn: Connection, job_id: str, file_ids: list[str], content_ids: list[str]) -> str:
    """SHA-256 of the canonical JSON of a job's detail rows, each a list of its columns in table
    order (but job_id), in key order: events, checkpoints, metrics, rejected_details, then the
    rows of files `file_ids` and of file_contents `content_ids` (content as its SHA-256)."""
    parts: JSONObj = {}
    for table in (job_events, job_checkpoints, job_metrics, rejected_details):
        columns = [c for c in table.c if c.name != "job_id"]
        keys = [c for c in table.primary_key.columns if c.name != "job_id"]
        query = select(*columns).where(table.c.job_id == job_id).order_by(*keys)
        parts[table.name] = [list(r) for r in conn.execute(query)]
    query = select(files).where(files.c.id.in_(file_ids)).order_by(files.c.id)
    parts["files"] = [list(r) for r in conn.execute(query)]
    c = file_contents.c
    query = select(c.file_id, c.content, c.size, c.sha256, c.content_type, c.encoding, c.note)
    parts["file_contents"] = [
        [r[0], None if r[1] is None else sha256(bytes(r[1])), *r[2:]]
        for r in conn.execute(query.where(c.file_id.in_(content_ids)).order_by(c.file_id))
    ]
    return sha256(canonical_json(parts))


def raw_text(column: Any) -> Any:
    """A JSON column as the exact text stored (PostgreSQL's json type keeps it as received)."""
    return cast(column, Text)


def history_raw() -> Any:
    """A job_history row's JSON as the exact text stored: its own `raw`, or where that is NULL
    (the job's newest row) its job's jobs.raw."""
    j = jobs.alias("current")  # not correlated with a `jobs` the caller selects from
    current = select(raw_text(j.c.raw)).where(j.c.id == job_history.c.job_id).scalar_subquery()
    return func.coalesce(raw_text(job_history.c.raw), current)


def head(conn: Connection) -> tuple[str, int, str] | None:
    """(archive id, seq, hash) of the newest link; None before migration 0011."""
    row = conn.execute(select(chain_head.c.archive_id, chain_head.c.seq, chain_head.c.hash)).one_or_none()
    return None if row is None else (row[0], int(row[1]), row[2])


def rebuild(conn: Connection, batch: int = 1000) -> None:
    """Link what the archive holds, in the order runs write it: a run's history rows (in id order:
    runs write one at a time), then its jobs' details, then its row once ended (migration 0011)."""
    ended = select(sync_runs.c.id).where(sync_runs.c.status != "running")
    d = job_details.c
    done = select(d.sync_run_id, d.fetched_at, d.job_id).where(d.state == "done")
    later = sorted(
        [(run_id, 2, 0.0, "") for run_id in conn.execute(ended).scalars()]
        + [(run_id or 0, 1, at, job_id) for run_id, at, job_id in conn.execute(done)]
    )
    h = job_history.c
    query = select(h.id, *(h[k] for k in HISTORY_FIELDS), history_raw().label("raw"))
    last = 0
    while rows := [
        dict(r._mapping) for r in conn.execute(query.where(h.id > last).order_by(h.id).limit(batch))
    ]:
        last = rows[-1]["id"]
        for rows_of_run in runs_of(rows):
            later = write_before(conn, later, (rows_of_run[0]["sync_run_id"] or 0, 0))
            history_links(conn, rows_of_run)
            changes = [
                {"row_id": r["id"], **{k: r[k] for k in ("seq", "record", "hash")}} for r in rows_of_run
            ]
            conn.execute(update(job_history).where(h.id == bindparam("row_id")), changes)
    write_before(conn, later, (float("inf"), 0))


def runs_of(rows: list[JSONObj]) -> list[list[JSONObj]]:
    """Consecutive rows grouped by run."""
    groups: list[list[JSONObj]] = []
    for row in rows:
        if groups and groups[-1][0]["sync_run_id"] == row["sync_run_id"]:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def write_before(
    conn: Connection, later: list[tuple[Any, ...]], key: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """Link the runs and details ordered before `key`; the rest is returned."""
    n = 0
    while n < len(later) and later[n][:2] < key:
        run_id, kind, at, job_id = later[n]
        if kind == 2:
            seal_runs(conn, [run_id], RUN_FIELDS_0011)  # rebuild is migration 0011's
        else:
            append_details(conn, job_id, run_id or None, at)
        n += 1
    return later[n:]
