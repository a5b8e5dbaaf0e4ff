"""What a full walk has listed, kept in the database for the run (`run_listings`), not in memory.

A full walk lets go of the route's archived jobs it did not list when it reaches the end, and the
segments of a parallel walk write a job two of them list once (the first to list it keeps it).
Both need every id the run has listed: a set in memory grew with the history (about 0.1 KB a
job), so each page's ids are noted in the page's own transaction (a page rolled back was not
listed), looked up a page at a time, and compared with `job_routes` in two statements at the end.
The run's rows are deleted when it ends (and any left by a killed run when the next one starts).
A run walks one route (sync_runs.route), so its id is all the rows need.

`walk` says who listed a job: HEAD, a walk from the head of the listing; 0, 1, ...: the segment
of a parallel walk that wrote it (one row per job among the segments).
"""

from sqlalchemy import ColumnElement, Connection, delete, exists, literal_column, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from archiver.models import job_routes, jobs, run_listings
from archiver.store import chunks

HEAD = -1
SEGMENTS = -2  # for let_go_unlisted: listed by any segment
FORGET_CHUNK = 10_000


def note(conn: Connection, run_id: int, walk: int, ids: list[str]) -> None:
    """These ids were listed (and, for a segment, written) by `walk` in this run."""
    if not ids:
        return
    backend = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"sync_run_id": run_id, "walk": walk, "job_id": job_id} for job_id in dict.fromkeys(ids)]
    conn.execute(backend.insert(run_listings).on_conflict_do_nothing(), rows)


def writers(conn: Connection, run_id: int, ids: list[str]) -> dict[str, int]:
    """The segment that wrote each of these ids this run, for those a segment wrote."""
    r = run_listings.c
    found: dict[str, int] = {}
    for chunk in chunks(ids):
        query = select(r.job_id, r.walk).where(r.sync_run_id == run_id, r.walk >= 0, r.job_id.in_(chunk))
        found.update((job_id, walk) for job_id, walk in conn.execute(query))
    return found


def let_go_unlisted(conn: Connection, run_id: int, route: str, walk: int, now: float) -> int:
    """After a full walk of `route` (`walk`: HEAD, or SEGMENTS: any segment): the route's archived
    jobs, not vanished, that it did not list this run are gone from its listing. As
    ledger.let_go: a job another route lists leaves this route's job_routes; the others are marked
    vanished. Returns how many were marked."""
    r, mine = run_listings.c, job_routes.c
    by = r.walk >= 0 if walk == SEGMENTS else r.walk == walk
    other = job_routes.alias("other")
    unlisted = ~exists().where(r.sync_run_id == run_id, r.job_id == mine.job_id, by)
    elsewhere = exists().where(other.c.job_id == mine.job_id, other.c.route != route)
    listed = exists().where(jobs.c.id == mine.job_id, jobs.c.vanished_at.is_(None))
    conn.execute(delete(job_routes).where(mine.route == route, unlisted, elsewhere, listed))
    left = select(mine.job_id).where(mine.route == route, unlisted)  # listed by no other route now
    gone = update(jobs).where(jobs.c.vanished_at.is_(None), jobs.c.id.in_(left)).values(vanished_at=now)
    return conn.execute(gone).rowcount


def forget(conn: Connection, run_id: int | None = None) -> None:
    """Delete what the run noted (None: every run's, those of runs killed meanwhile included).
    On SQLite a chunk at a time: with foreign keys on, one DELETE first lists every row it
    deletes, in memory (25 MB for the million rows of a full walk of a million jobs)."""
    which = true() if run_id is None else run_listings.c.sync_run_id == run_id
    if conn.dialect.name != "sqlite":
        conn.execute(delete(run_listings).where(which))
        return
    rowid: ColumnElement[int] = literal_column("rowid")
    chunk = select(rowid).select_from(run_listings).where(which).limit(FORGET_CHUNK)
    while conn.execute(delete(run_listings).where(rowid.in_(chunk.scalar_subquery()))).rowcount:
        pass
