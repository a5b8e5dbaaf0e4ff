"""What the archive knows about its runs and its coverage: run records, open gaps, jobs in flight."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from archiver import normalize, reports
from archiver.models import jobs, sync_gaps, sync_runs
from archiver.store import JSONObj, chunks


@dataclass(eq=False)
class Gap:
    """Part of the listing that may hold jobs never archived: the jobs listed after `after_id`
    (None: from the head) and before `until_id` (None: to the end), or before any job created
    before `until_created_at` (the closing job may itself vanish)."""

    id: int | None
    after_id: str | None
    until_id: str | None
    until_created_at: int | None
    blocked_reason: str | None = None
    blocked_at: float | None = None
    opened_at: float | None = None

    def closes_at(self, canon: JSONObj) -> bool:
        if self.until_id is None:
            return False
        created = canon["created_at"]
        return canon["id"] == self.until_id or (
            created is not None and self.until_created_at is not None and created < self.until_created_at
        )


def load_gaps(conn: Connection) -> list[Gap]:
    g = sync_gaps.c
    query = select(
        g.id, g.after_id, g.until_id, g.until_created_at, g.blocked_reason, g.blocked_at, g.opened_at
    )
    return [Gap(*row) for row in conn.execute(query.order_by(g.id))]


def save_gap(conn: Connection, gap: Gap, run_id: int, now: float) -> None:
    """Insert a new gap (its id is set) or store where an open one now starts."""
    values = {k: getattr(gap, k) for k in ("after_id", "blocked_reason", "blocked_at")}
    if gap.id is None:
        values |= {"until_id": gap.until_id, "until_created_at": gap.until_created_at, "opened_at": now}
        gap.id = conn.execute(
            insert(sync_gaps).values(**values, sync_run_id=run_id).returning(sync_gaps.c.id)
        ).scalar_one()
    else:
        conn.execute(update(sync_gaps).where(sync_gaps.c.id == gap.id).values(**values, sync_run_id=run_id))


def close_gaps(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(sync_gaps).where(sync_gaps.c.id.in_(ids)))


def start_run(conn: Connection, mode: str, base_url: str, now: float) -> int:
    """Record a new run; a run still marked running was killed (the caller holds the run lock)."""
    conn.execute(
        update(sync_runs)
        .where(sync_runs.c.status == "running")
        .values(status="abandoned", error="the process ended without recording its end (killed?)")
    )
    row = {"started_at": now, "status": "running", "mode": mode, "base_url": base_url}
    return int(conn.execute(insert(sync_runs).values(row).returning(sync_runs.c.id)).scalar_one())


def save_run(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))


def load_in_flight(conn: Connection) -> dict[str, int | None]:
    """Archived jobs still moving (see normalize.in_flight), and not vanished: id -> created_at."""
    moving = jobs.c.status_class.in_(normalize.IN_FLIGHT_CLASSES) | (
        (jobs.c.status_class == "unknown") & jobs.c.status.is_not(None)
    )
    query = select(jobs.c.id, jobs.c.created_at).where(moving, jobs.c.vanished_at.is_(None))
    return {job_id: created for job_id, created in conn.execute(query)}


def count_created_between(conn: Connection, oldest: int, newest: int) -> int:
    query = select(func.count()).where(jobs.c.created_at >= oldest, jobs.c.created_at <= newest)
    return conn.execute(query).scalar_one()


def newest_job(conn: Connection) -> tuple[str, int | None] | None:
    """The archived job listed first (the API lists newest first): where a head walk meets the archive."""
    query = select(jobs.c.id, jobs.c.created_at).order_by(
        jobs.c.created_at.desc().nulls_last(), jobs.c.id.desc()
    )
    row = conn.execute(query.limit(1)).first()
    return (row[0], row[1]) if row else None


def spaced_jobs(conn: Connection, n: int, limit: int) -> list[tuple[str, int | None]]:
    """Up to n - 1 listed jobs, newest first, that cut the archived history into parts of about as
    many whole pages each: where the segments of a parallel walk start. Each is the last job of a
    page, so the part before it ends with a whole page."""
    listed = jobs.c.vanished_at.is_(None) & jobs.c.created_at.is_not(None)
    pages = -(-conn.execute(select(func.count()).where(listed)).scalar_one() // limit)
    parts = min(n, pages)
    query = select(jobs.c.id, jobs.c.created_at).where(listed)
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(1)
    cuts = [conn.execute(query.offset(round(k * pages / parts) * limit - 1)).first() for k in range(1, parts)]
    return [(row[0], row[1]) for row in cuts if row is not None]


def mark_vanished(conn: Connection, ids: list[str], now: float) -> None:
    for chunk in chunks(ids):
        conn.execute(
            update(jobs).where(jobs.c.id.in_(chunk), jobs.c.vanished_at.is_(None)).values(vanished_at=now)
        )


def listed_ids(conn: Connection) -> Iterator[str]:
    """Every archived job not marked vanished."""
    yield from conn.execute(select(jobs.c.id).where(jobs.c.vanished_at.is_(None))).scalars()


def coverage(conn: Connection) -> list[str]:
    """For `archiver status`: why part of the history is unreachable through this route, and since
    when (blocked gaps, one line per reason); then the gaps a cut-off run left for the next sync."""
    lines: list[str] = []
    blocked: dict[str, float | None] = {}
    for gap in load_gaps(conn):
        if gap.blocked_reason:
            blocked.setdefault(gap.blocked_reason, gap.opened_at)
        else:
            where = f"after job {gap.after_id}" if gap.after_id else "from the head"
            end = f"up to job {gap.until_id}" if gap.until_id else "to the end of the history"
            lines.append(f"coverage: a run was cut off; the next sync walks the jobs {where} {end}")
    since = [f"coverage: partial: {why} (since {reports.utc(opened)})" for why, opened in blocked.items()]
    return since + lines
