"""`archiver verify`'s check of the current rows: each job's row in `jobs` and its child tables
are what its newest history row says (archiver/verify.py checks the chain).

A history row's record holds the digest of the rows written with it (`typed_sha256`,
store.typed_digest): rows that still hash to it are as written. (The record is the chain's,
checked by verify.py.) A job whose newest record has no digest (written before it was recorded),
or whose rows differ from it, has its JSON normalized again and compared column by column
(which also names what differs). Rows are compared as the archive
holds them: JSON columns as their stored text."""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, Column, Connection, Table, case, exists, func, select

from archiver import chain, normalize, store
from archiver.models import CHILD_TABLES, job_history, jobs

if TYPE_CHECKING:
    from archiver.verify import Verdict

Row = tuple[Any, ...]
TYPED = len(store.JOB_COLUMNS)  # a job's row as read: JOB_COLUMNS, then its newest history row's
STATUS, PROVIDER = store.JOB_COLUMNS.index("status"), store.JOB_COLUMNS.index("provider")


def check_jobs(conn: Connection, v: "Verdict", batch: int = 2000) -> None:
    """Each job's row and children are what its newest history row says. (That row's
    content_hash is in its record, which the chain's check compares: not recomputed here.)
    Jobs are read in batches of an id range, each with its newest history row (the JSON texts
    compared by the database), and each child table by the range (no IN lists to compile)."""
    first = ""
    notes = normalize.Notes()
    h = job_history.c
    n = job_history.alias("newer").c
    newest = select(func.max(n.id)).where(n.job_id == jobs.c.id).correlate(jobs).scalar_subquery()
    same_raw = h.raw.is_(None) | (chain.raw_text(jobs.c.raw) == chain.raw_text(h.raw))  # NULL: jobs.raw
    digest = record_digest(conn, h.record)
    query = (
        select(*(as_held(jobs.c[k]) for k in store.JOB_COLUMNS))
        .add_columns(jobs.c.content_hash, h.content_hash, h.status, digest, same_raw, h.id)
        .select_from(jobs.outerjoin(job_history, h.id == newest))
        .order_by(jobs.c.id)
        .limit(batch)
    )
    with_history = 0
    while rows := [tuple(r) for r in conn.execute(query.where(jobs.c.id > first))]:
        with_history += sum(r[-1] is not None for r in rows)
        low, first = first, rows[-1][0]
        kids = children(conn, low, first)
        for row in rows:
            v.jobs += 1
            job_id = row[0]
            child_rows = [kids.get((table.name, job_id), []) for table in CHILD_TABLES]
            wrong = job_differs(conn, row, child_rows, notes)
            if wrong:
                v.fail("current", f"job {job_id}: {wrong}")
    notes.counts.clear()
    # archiver never deletes a job: more jobs in the history than jobs with history rows is a tamper
    if conn.execute(select(func.count(h.job_id.distinct()))).scalar_one() > with_history:
        gone = select(h.job_id).where(~exists().where(jobs.c.id == h.job_id)).limit(1)
        for job_id in conn.execute(gone).scalars():
            v.fail("current", f"job {job_id}: it has history rows but no row in jobs (deleted?)")


def record_digest(conn: Connection, record: Column[Any]) -> Any:
    """The record's typed_sha256, cut out of its text by the database (parsing a million records
    in Python cost 7 s). Sound for a record as archiver writes it: in canonical JSON every quote
    inside a string is escaped, so `"typed_sha256":"` can only be that member's key; a record
    that is not as written fails the chain's check anyway."""
    find = func.strpos if conn.dialect.name == "postgresql" else func.instr
    at = find(record, KEY)
    return case((at > 0, func.substr(record, at + len(KEY), 64)))


KEY = '"typed_sha256":"'


def as_held(column: Column[Any]) -> Any:
    """The column as the archive holds it: a JSON column as its stored text."""
    return chain.raw_text(column).label(column.name) if isinstance(column.type, JSON) else column


def children(conn: Connection, low: str, high: str) -> dict[tuple[str, str], list[Row]]:
    """(table, job id) -> the rows of the jobs after `low` up to `high`, as tuples, in key order."""
    found: dict[tuple[str, str], list[Row]] = {}
    for table in CHILD_TABLES:
        within = (table.c.job_id > low) & (table.c.job_id <= high)
        query = select(*map(as_held, table.c)).where(within).order_by(*table.primary_key.columns)
        name = table.name
        for r in conn.execute(query):  # job_id first
            found.setdefault((name, r[0]), []).append(tuple(r))
    return found


def job_differs(
    conn: Connection, row: Row, child_rows: list[list[Row]], notes: normalize.Notes
) -> str | None:
    """What of the job's row or child rows (a list per CHILD_TABLES) is not what its newest
    history row says. `row`: JOB_COLUMNS, content_hash, then of the history row content_hash,
    status, the typed_sha256 its record holds, whether its JSON text is the job's, id (None:
    there is none)."""
    content_hash, seen_hash, seen_status, digest, same_raw, history_id = row[TYPED:]
    if history_id is None:
        return "no history row"
    raw = None if same_raw else texts(conn, row[0], history_id)
    if raw and parse(raw[0]) != parse(raw[1]):
        return "raw is not its newest history row's JSON"
    if (content_hash, row[STATUS]) != (seen_hash, seen_status):
        return "content_hash or status is not its newest history row's"
    values = row[:TYPED]
    # The digest vouches only for rows whose JSON text is byte for byte the record's (`3.0` for
    # `3` parses equal, not normalizes equal) and that hold no float (no column of them is one:
    # SQLite keeps one anyway, and orjson writes an infinity as null).
    vouched = same_raw and digest is not None and float not in map(type, values)
    if vouched and store.held_digest(values, child_rows) == digest:
        return None
    job = parse((raw or texts(conn, row[0], history_id))[0])
    typed, rows_of = store.job_rows(job, normalize.job(job, notes, row[PROVIDER] or "unknown"))
    expected = store.JOB_VALUES(typed)
    if loaded(jobs, store.JOB_COLUMNS, expected) != loaded(jobs, store.JOB_COLUMNS, values):
        wrong = next(i for i, (e, x) in enumerate(zip(expected, values, strict=True)) if e != x)
        return f"{store.JOB_COLUMNS[wrong]} is {short(values[wrong])}, its JSON says {short(expected[wrong])}"
    for table, held, keys in zip(CHILD_TABLES, child_rows, store.CHILD_COLUMNS, strict=True):
        written = [tuple(e.get(k) for k in keys) for e in rows_of[table]]
        if [loaded(table, keys, r) for r in held] != [loaded(table, keys, r) for r in written]:
            return f"its {table.name} rows are not what its JSON says"
    return None


def loaded(table: Table, keys: Sequence[str], values: Sequence[Any]) -> list[Any]:
    """The values with those of JSON columns parsed: their text may differ from what was written
    with the same value (SQLite gives a JSON column numeric affinity: `2.0` is read back `2`)."""
    return [
        parse(v) if v is not None and isinstance(table.c[k].type, JSON) else v
        for k, v in zip(keys, values, strict=True)
    ]


def texts(conn: Connection, job_id: str, history_id: int) -> tuple[str, str]:
    """The JSON texts of the job's row and of its history row `history_id`."""
    one = select(chain.raw_text(jobs.c.raw)).where(jobs.c.id == job_id).scalar_subquery()
    two = select(chain.raw_text(job_history.c.raw)).where(job_history.c.id == history_id).scalar_subquery()
    first, second = conn.execute(select(one, two)).one()
    return first, second


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
