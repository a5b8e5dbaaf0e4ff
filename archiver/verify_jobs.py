"""`archiver verify`'s check of the current rows: each job's row in `jobs` and its child tables
are what its newest history row's JSON makes of them (archiver/verify.py checks the chain)."""

import json
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, func, select

from archiver import chain, normalize, store
from archiver.models import CHILD_TABLES, job_history, jobs

if TYPE_CHECKING:
    from archiver.verify import Verdict


def check_jobs(conn: Connection, v: "Verdict", batch: int = 2000) -> None:
    """Each job's row and children are what its newest history row's JSON makes of them. (That
    JSON's content_hash is the history row's, which its record holds: not recomputed here.)
    Jobs are read in batches of an id range, each table by the range (no IN lists to compile)."""
    first = ""
    notes = normalize.Notes()
    h = job_history.c
    columns = [c for c in jobs.c if c.name != "raw"]
    query = select(*columns, chain.raw_text(jobs.c.raw)).order_by(jobs.c.id).limit(batch)
    at = {c.name: i for i, c in enumerate(columns)}
    typed_at = [at[k] for k in store.JOB_COLUMNS]
    newest = select(func.max(h.id).label("id")).group_by(h.job_id)
    history = select(h.job_id, h.content_hash, h.status, chain.raw_text(h.raw))
    while rows := [tuple(r) for r in conn.execute(query.where(jobs.c.id > first))]:
        low, first = first, rows[-1][at["id"]]
        within = newest.where(h.job_id > low, h.job_id <= first).subquery()
        seen = {
            r[0]: tuple(r) for r in conn.execute(history.join_from(job_history, within, h.id == within.c.id))
        }
        kids = children(conn, low, first)
        for row in rows:
            v.jobs += 1
            job_id = row[at["id"]]
            wrong = job_differs(row, at, typed_at, seen.get(job_id), kids, notes)
            if wrong:
                v.fail("current", f"job {job_id}: {wrong}")
    notes.counts.clear()


def children(conn: Connection, low: str, high: str) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """(table, job id) -> the rows of the jobs after `low` up to `high`, as tuples, in key order."""
    found: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for table in CHILD_TABLES:
        within = (table.c.job_id > low) & (table.c.job_id <= high)
        for r in conn.execute(select(table).where(within).order_by(*table.primary_key.columns)):
            found.setdefault((table.name, r.job_id), []).append(tuple(r))
    return found


def job_differs(
    row: tuple[Any, ...],
    at: dict[str, int],
    typed_at: list[int],
    seen: tuple[Any, ...] | None,
    kids: dict[tuple[str, str], list[tuple[Any, ...]]],
    notes: normalize.Notes,
) -> str | None:
    """What of the job's row (`row`: its columns at `at`, its raw text last) or children is not
    what its newest history row (`seen`: job_id, content_hash, status, raw text) says."""
    if seen is None:
        return "no history row"
    job = parse(row[-1])
    if row[-1] != seen[3] and job != parse(seen[3]):
        return "raw is not its newest history row's JSON"
    if (row[at["content_hash"]], row[at["status"]]) != seen[1:3]:
        return "content_hash or status is not its newest history row's"
    typed, rows_of = store.job_rows(job, normalize.job(job, notes, row[at["provider"]] or "unknown"))
    if [typed[k] for k in store.JOB_COLUMNS] != [row[i] for i in typed_at]:
        wrong = next(k for k in store.JOB_COLUMNS if typed[k] != row[at[k]])
        return f"{wrong} is {short(row[at[wrong]])}, its JSON says {short(typed[wrong])}"
    for table, expected in rows_of.items():
        if kids.get((table.name, row[at["id"]]), []) != [
            tuple(e.get(c.name) for c in table.c) for e in expected
        ]:
            return f"its {table.name} rows are not what its JSON says"
    return None


def parse(text: str) -> Any:
    """JSON text as the archive's JSON columns read it ({} for none: a record no longer JSON)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # beyond orjson: integers over 64 bits, lone surrogates
        try:
            return json.loads(text)
        except ValueError:
            return {}


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
