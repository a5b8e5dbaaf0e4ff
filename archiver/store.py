"""Jobs as rows (pure mappings) and the per-page write: upsert, replace children, append history."""

import json
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Table, delete, insert, select, update

from archiver import chain, normalize
from archiver.bulk import executemany, pipeline
from archiver.canonical import canonical_json as canonical_json  # walks.py takes it from here
from archiver.db import JSONText, to_json
from archiver.models import (
    CHILD_TABLES,
    errors,
    integrations,
    job_history,
    job_routes,
    jobs,
    rejected_items,
    result_files,
    tags,
)
from archiver.normalize import HYPERPARAMETERS, Notes

log = logging.getLogger(__name__)

JSONObj = dict[str, Any]
Job = tuple[JSONObj, JSONObj]  # (the job as received, its canonical values from normalize.job)


@dataclass
class PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    known: int = 0  # jobs that were in the archive before this page was written
    returned: int = 0  # jobs marked vanished that are listed again
    quiet: bool = False  # every job already archived and unchanged (the walk adds: none due a refresh)
    changed: list[str] = field(default_factory=list)  # ids of the jobs inserted or updated


@dataclass
class Batch:
    """One page's items made ready to write, off the writer's thread when the walk prefetches:
    the jobs as (received, canonical values), their content hashes by id, the items that are not jobs."""

    jobs: list[Job]
    hashes: dict[str, str]
    bad: list[tuple[int, str, Any]]


def make_batch(items: list[Any], notes: Notes, provider: str) -> Batch:
    good, bad = split_items(items)
    jobs = [(job, normalize.job(job, notes, provider)) for job in good]
    return Batch(jobs, {canon["id"]: content_hash(job, provider) for job, canon in jobs}, bad)


def content_hash(job: JSONObj, provider: str = "unknown") -> str:
    """SHA-256 of the canonical JSON of what the job means (normalize.meaning): equal hashes, no change."""
    return chain.sha256(canonical_json(normalize.meaning(job, provider)))


def stored(conn: Connection, ids: list[str]) -> dict[str, tuple[str, bool]]:
    """id -> (content hash, vanished) of the archived ones among `ids`."""
    found: dict[str, tuple[str, bool]] = {}
    for chunk in chunks(ids):
        query = select(jobs.c.id, jobs.c.content_hash, jobs.c.vanished_at.is_not(None)).where(
            jobs.c.id.in_(chunk)
        )
        found.update((job_id, (h, gone)) for job_id, h, gone in conn.execute(query))
    return found


def chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    """Old SQLite builds allow 999 bound variables per statement."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def job_rows(job: JSONObj, canon: JSONObj) -> tuple[JSONObj, dict[Table, list[JSONObj]]]:
    """The `jobs` row of one job, and its rows in each child table."""
    job_id = canon["id"]
    row = {k: canon[k] for k in JOB_COLUMNS}
    row["metadata"] = JSONText(to_json(row["metadata"]))  # the text stored: typed_digest takes it
    row["raw"] = JSONText(to_json(job))  # serialized once: stored in jobs.raw, hashed in job_history
    children: dict[Table, list[JSONObj]] = {t: [] for t in CHILD_TABLES}
    if canon["error"]:
        children[errors].append({"job_id": job_id, **canon["error"]})
    children[result_files] = [
        {"job_id": job_id, "position": i, "file_id": f} for i, f in enumerate(canon["result_files"])
    ]
    for i, item in enumerate(canon["integrations"]):
        held = {k: item[k] for k in INTEGRATION_COLUMNS} | {"settings": JSONText(to_json(item["settings"]))}
        children[integrations].append({"job_id": job_id, "position": i, **held})
        children[tags] += [
            {"job_id": job_id, "integration_position": i, "position": j, "tag": tag}
            for j, tag in enumerate(item["tags"])
        ]
    return row, children


JOB_COLUMNS = (
    *("id", "object", "created_at", "finished_at", "estimated_finish", "status", "status_class"),
    *("model", "fine_tuned_model", "organization_id", "trained_tokens", "training_file"),
    *("validation_file", "seed", "user_provided_suffix", "method_type", "provider", "metadata"),
    *HYPERPARAMETERS,
)
INTEGRATION_COLUMNS = ("type", "wandb_project", "wandb_name", "wandb_entity", "settings")
JOB_VALUES = itemgetter(*JOB_COLUMNS)
CHILD_COLUMNS = [tuple(c.name for c in table.c) for table in CHILD_TABLES]


def typed_digest(row: JSONObj, children: dict[Table, list[JSONObj]]) -> str | None:
    """SHA-256 of a job's rows as the archive holds them: the values of its `jobs` row's
    JOB_COLUMNS, then its rows of each child table (CHILD_TABLES order), each a list in column
    order; JSON columns as their stored text. Its history row's record keeps it (typed_sha256) so that
    `verify` can check the job's current rows without normalizing its JSON again
    (archiver/verify_jobs.py). None when orjson cannot write them (verify normalizes those)."""
    kids = (children[t] for t in CHILD_TABLES)
    tables = (
        [[r.get(k) for k in keys] for r in rows] for rows, keys in zip(kids, CHILD_COLUMNS, strict=True)
    )
    return held_digest(JOB_VALUES(row), tables)


# The normalization the digests are of: a migration that re-derives the typed rows of the jobs
# already archived (rederive_all) changes them without a history row, so it raises this, and the
# digests written before no longer vouch for any rows (verify normalizes those jobs again).
NORMALIZATION = 1


def held_digest(values: Sequence[Any], child_rows: Iterable[Sequence[Sequence[Any]]]) -> str | None:
    try:
        return chain.sha256(orjson.dumps([NORMALIZATION, values, *child_rows]))
    except TypeError:  # an integer beyond 64 bits, a lone surrogate
        return None


def upsert_page(
    conn: Connection,
    page: list[Job],
    run_id: int,
    now: float,
    hashes: dict[str, str] | None = None,
    via: str = "list",
    route: str = "default",
) -> PageCounts:
    """Write one page of jobs: only new or changed jobs are touched; unchanged ones (the same meaning,
    see content_hash) write nothing (but a job that had vanished and is listed again loses its mark).
    `hashes`: their content hashes by id, when already taken (make_batch); `via`: the route that
    served them, "list" or "get" (a single-job GET), kept in job_history.observed_via; `route`: the
    route that listed them (job_routes). A job this route lists for the first time is not quiet: a
    job known only through another route must not stop this route's walk."""
    by_id = {canon["id"]: (job, canon) for job, canon in page}  # last wins: see executemany
    if hashes is None:
        hashes = {job_id: content_hash(job, canon["provider"]) for job_id, (job, canon) in by_id.items()}
    before = stored(conn, list(by_id))
    changed = [job_id for job_id, h in hashes.items() if before.get(job_id, ("", False))[0] != h]
    counts = PageCounts(unchanged=len(by_id) - len(changed), known=len(before))
    back = [job_id for job_id, (_, gone) in before.items() if gone and job_id not in changed]
    counts.returned = len(back)
    for chunk in chunks(back):
        conn.execute(update(jobs).where(jobs.c.id.in_(chunk)).values(vanished_at=None))
    counts.changed = changed
    updated = [job_id for job_id in changed if job_id in before]
    counts.updated, counts.inserted = len(updated), len(changed) - len(updated)
    if changed:
        write_jobs(conn, [by_id[job_id] for job_id in changed], updated, hashes, run_id, now, history=via)
    new_to_route = record_routes(conn, route, list(by_id), run_id, known=before.keys())
    counts.quiet = not changed and not new_to_route
    return counts


def record_routes(
    conn: Connection, route: str, ids: list[str], run_id: int | None, known: Collection[str] = ()
) -> int:
    """Record that `route` lists these jobs (seen by run `run_id`); how many it lists for the first
    time. Only the `known` ones (archived before this page) can be listed by it already."""
    r = job_routes.c
    listed: set[str] = set()
    for chunk in chunks([job_id for job_id in ids if job_id in known]):
        listed.update(conn.execute(select(r.job_id).where(r.route == route, r.job_id.in_(chunk))).scalars())
        seen = update(job_routes).where(
            r.route == route, r.job_id.in_(chunk), r.last_seen_run.is_distinct_from(run_id)
        )
        conn.execute(seen.values(last_seen_run=run_id))
    new = [
        {"route": route, "job_id": job_id, "first_seen_run": run_id, "last_seen_run": run_id}
        for job_id in ids
        if job_id not in listed
    ]
    executemany(conn, job_routes, new)
    return len(new)


# A history row whose JSON is its job's jobs.raw (the newest) takes that JSON as its own.
keep_raw = (
    update(job_history)
    .where(job_history.c.raw.is_(None))
    .values(raw=select(jobs.c.raw).where(jobs.c.id == job_history.c.job_id).scalar_subquery())
)


def write_jobs(
    conn: Connection,
    page: list[Job],
    updated: list[str],
    hashes: dict[str, str],
    run_id: int | None,
    now: float,
    history: str | None,
) -> None:
    """Upsert these jobs' rows, replace the children of the `updated` ones, append history rows
    observed via `history` (the route; None: no history)."""
    seen = {"last_seen_at": now, "first_seen_at": now, "last_sync_run_id": run_id, "vanished_at": None}
    job_table: list[JSONObj] = []
    children: dict[Table, list[JSONObj]] = {t: [] for t in CHILD_TABLES}
    digests: list[str | None] = []
    for job, canon in page:
        row, kids = job_rows(job, canon)
        job_table.append({**row, **seen, "content_hash": hashes[canon["id"]]})
        digests.append(typed_digest(row, kids) if history else None)
        for table, rows in kids.items():
            children[table] += rows
    for chunk in chunks(updated):
        for table in CHILD_TABLES:
            conn.execute(delete(table).where(table.c.job_id.in_(chunk)))
        if history:  # their newest history rows keep the JSON that jobs.raw is about to lose
            conn.execute(keep_raw.where(job_history.c.job_id.in_(chunk)))
    versions = [
        {
            "job_id": row["id"],
            "sync_run_id": run_id,
            "observed_at": now,
            "status": row["status"],
            "content_hash": row["content_hash"],
            "raw": row["raw"],
            "observed_via": history,
        }
        for row in (job_table if history else ())
    ]
    chain.history_links(conn, versions, digests)  # reads and advances the chain's head: not in the pipeline
    for version in versions:
        version["raw"] = None  # hashed, not stored twice: the newest version's JSON is jobs.raw
    with pipeline(conn):  # one round trip on PostgreSQL
        executemany(conn, jobs, job_table, upsert=True)
        for table in reversed(CHILD_TABLES):  # parents before children
            executemany(conn, table, children[table])
        executemany(conn, job_history, versions)


def rederive_all(conn: Connection, batch: int = 1000) -> None:
    """Recompute every job's typed columns, children and content hash from `raw` with the current
    normalization (a migration calls this, and raises NORMALIZATION); job_history is left as it
    was observed. The hash is of the provider the job has (0005 set it to "unknown" for the jobs
    archived before it). jobs.raw keeps its exact text: its newest history row's hash is of it."""
    notes = Notes()
    last = ""
    text = chain.raw_text(jobs.c.raw)
    while True:
        query = select(jobs.c.id, text, jobs.c.provider, jobs.c.last_seen_at, jobs.c.last_sync_run_id)
        rows = conn.execute(query.where(jobs.c.id > last).order_by(jobs.c.id).limit(batch)).all()
        if not rows:
            break
        last = rows[-1].id
        for job_id, held, provider, seen_at, run_id in rows:
            job, provider = json.loads(held), provider or "unknown"
            page = [(job, normalize.job(job, notes, provider))]
            hashes = {job_id: content_hash(job, provider)}
            write_jobs(conn, page, [job_id], hashes, run_id, seen_at, None)
            if to_json(job) != held:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(raw=JSONText(held)))
    notes.counts.clear()


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
