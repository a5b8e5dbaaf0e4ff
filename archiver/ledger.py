"""What the archive knows about its runs and its coverage: run records, open gaps, jobs in flight."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select, true, update

from archiver import chain, listings, normalize, reports
from archiver.models import job_refresh, job_routes, jobs, sync_gaps, sync_runs
from archiver.store import JSONObj, chunks

DEFAULT = "default"  # the route of an archive without a config file, and of all before 0012


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
    after_created_at: int | None = None  # of the job `after_id`, when the gap was moved there


def on_route(route: str, job_id: Any = jobs.c.id) -> Any:
    """Jobs the route lists (job_routes): each route's coverage is reasoned over its own jobs.
    EXISTS, not IN (subquery): SQLite builds an IN's subquery into a temporary index in memory,
    every id the route lists (25 MB at a million jobs); EXISTS looks each job up by primary key."""
    return exists().where(job_routes.c.route == route, job_routes.c.job_id == job_id)


def load_gaps(conn: Connection, route: str = DEFAULT) -> list[Gap]:
    g = sync_gaps.c
    query = select(
        g.id,
        g.after_id,
        g.until_id,
        g.until_created_at,
        g.blocked_reason,
        g.blocked_at,
        g.opened_at,
        g.after_created_at,
    )
    return [Gap(*row) for row in conn.execute(query.where(g.route == route).order_by(g.id))]


def save_gap(conn: Connection, gap: Gap, run_id: int, now: float, route: str = DEFAULT) -> None:
    """Insert a new gap (its id is set) or store where an open one now starts."""
    keys = ("after_id", "after_created_at", "until_id", "until_created_at", "blocked_reason", "blocked_at")
    values = {k: getattr(gap, k) for k in keys}  # a page out of order moves its end to the end
    if gap.id is None:
        values["opened_at"] = now
        gap.id = conn.execute(
            insert(sync_gaps).values(**values, sync_run_id=run_id, route=route).returning(sync_gaps.c.id)
        ).scalar_one()
    else:
        conn.execute(update(sync_gaps).where(sync_gaps.c.id == gap.id).values(**values, sync_run_id=run_id))


def close_gaps(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(sync_gaps).where(sync_gaps.c.id.in_(ids)))


def start_run(conn: Connection, mode: str, base_url: str, now: float, route: str = DEFAULT) -> int:
    """Record a new run of `route`; a run still marked running, of any route, was killed (the
    caller holds the run lock, which is the archive's)."""
    killed = update(sync_runs).where(sync_runs.c.status == "running").returning(sync_runs.c.id)
    ended = conn.execute(
        killed.values(status="abandoned", error="the process ended without recording its end (killed?)")
    )
    chain.seal_runs(conn, list(ended.scalars()))
    listings.forget(conn)  # what killed runs listed
    row = {"started_at": now, "status": "running", "mode": mode, "base_url": base_url, "route": route}
    return int(conn.execute(insert(sync_runs).values(row).returning(sync_runs.c.id)).scalar_one())


def save_run(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))


def end_run(conn: Connection, run_id: int, **values: Any) -> None:
    """The run's last record: its row, then a link of the audit chain."""
    save_run(conn, run_id, **values)
    listings.forget(conn, run_id)
    chain.seal_runs(conn, [run_id])


def in_flight_jobs() -> Any:
    """Archived jobs still moving (see normalize.in_flight), and not vanished."""
    moving = jobs.c.status_class.in_(normalize.IN_FLIGHT_CLASSES) | (
        (jobs.c.status_class == "unknown") & jobs.c.status.is_not(None)
    )
    return moving & jobs.c.vanished_at.is_(None)


def load_in_flight(
    conn: Connection, now: float, everything: bool = False, route: str = DEFAULT
) -> dict[str, int | None]:
    """The in-flight jobs the route lists due a refresh (`everything`: all of them): id -> created_at.
    A job two routes list is refreshed by whichever runs first; its refresh state is the job's."""
    due = job_refresh.c.due_at.is_(None) | (job_refresh.c.due_at <= now)
    query = select(jobs.c.id, jobs.c.created_at).select_from(jobs.outerjoin(job_refresh))
    query = query.where(in_flight_jobs(), on_route(route), true() if everything else due)
    return {job_id: created for job_id, created in conn.execute(query)}


def load_refresh_rows(conn: Connection) -> dict[str, float | None]:
    """Jobs with a job_refresh row: id -> when a GET first answered 404 (unconfirmed), if one did."""
    query = select(job_refresh.c.job_id, job_refresh.c.missing_at)
    return {job_id: missing for job_id, missing in conn.execute(query)}


def unknown_statuses(conn: Connection) -> tuple[int, str | None]:
    """How many archived jobs in flight carry a status name archiver does not know, and one."""
    query = select(func.count(), func.min(jobs.c.status)).where(
        jobs.c.status_class == "unknown", jobs.c.status.is_not(None), jobs.c.vanished_at.is_(None)
    )
    count, example = conn.execute(query).one()
    return count, example


GRACE = 3600.0  # a job in flight unchanged for less is refreshed by every run
MAX_WAIT = 86400.0  # never more than a day between refreshes


def backoff_due(now: float, unchanged_since: float) -> float | None:
    """When a job in flight, unchanged since `unchanged_since`, is next due: after a quarter of
    the time it has been unchanged, capped at a day; none during its first hour unchanged."""
    quiet = now - unchanged_since
    return None if quiet < GRACE else now + min(MAX_WAIT, quiet / 4)


def record_refreshes(
    conn: Connection, canons: list[JSONObj], changed: list[str], due: list[str], rows: set[str], now: float
) -> bool:
    """The refresh state after a page (or a batch of GETs): a job seen changed, or seen at all
    after a failure or a 404, starts afresh; one seen in flight and unchanged while due backs off.
    `rows` (the jobs with a row) is kept up to date; returns whether anything was written."""
    seen = {c["id"] for c in canons}
    waiting = [
        c["id"]
        for c in canons
        if c["id"] in due and c["id"] not in changed and normalize.in_flight(c["status"], c["status_class"])
    ]
    fresh = set(changed) & rows
    r = job_refresh.c
    for chunk in chunks(sorted(seen & rows - fresh - set(waiting))):  # seen, unchanged, not due:
        troubled = (r.failures > 0) | r.missing_at.is_not(None)  # a back-off goes on, a doubt ends
        fresh.update(conn.execute(select(r.job_id).where(r.job_id.in_(chunk), troubled)).scalars())
    stale = sorted((fresh | set(waiting)) & rows)
    for chunk in chunks(stale):
        conn.execute(delete(job_refresh).where(job_refresh.c.job_id.in_(chunk)))
    rows -= set(stale)
    written = []
    for chunk in chunks(waiting):
        query = select(jobs.c.id, jobs.c.last_seen_at).where(jobs.c.id.in_(chunk))
        for job_id, since in conn.execute(query):
            when = backoff_due(now, since)
            if when is not None:
                written.append({"job_id": job_id, "due_at": when})
    if written:
        conn.execute(insert(job_refresh), written)
        rows.update(r["job_id"] for r in written)
    return bool(stale or written)


def record_failures(conn: Connection, failed: dict[str, str], rows: set[str], now: float) -> None:
    """GETs that failed: each job is tried again after 1, 2, 4, ... minutes, at most a day."""
    for job_id, error in failed.items():
        row = conn.execute(select(job_refresh).where(job_refresh.c.job_id == job_id)).first()
        failures = (row.failures if row else 0) + 1
        values = {
            "due_at": now + min(MAX_WAIT, 60.0 * 2 ** (failures - 1)),
            "failures": failures,
            "failing_since": (row.failing_since if row and row.failing_since else now),
            "error": error,
        }
        if row:
            conn.execute(update(job_refresh).where(job_refresh.c.job_id == job_id).values(values))
        else:
            conn.execute(insert(job_refresh).values(job_id=job_id, **values))
        rows.add(job_id)


def record_missing(conn: Connection, ids: list[str], rows: set[str], now: float) -> None:
    """A GET answered 404 once: vanished only if a later run's GET does too."""
    for job_id in ids:
        if job_id in rows:
            conn.execute(update(job_refresh).where(job_refresh.c.job_id == job_id).values(missing_at=now))
        else:
            conn.execute(insert(job_refresh).values(job_id=job_id, missing_at=now))
            rows.add(job_id)


def failing_refreshes(conn: Connection, route: str | None = None) -> list[tuple[str, float, int, str]]:
    """Jobs (of `route`, if given) whose refresh keeps failing: (id, since, failures, the last
    error), oldest first."""
    r = job_refresh.c
    query = select(r.job_id, r.failing_since, r.failures, r.error).where(r.failures > 0)
    if route is not None:
        query = query.where(on_route(route, r.job_id))
    return [(a, b, c, d) for a, b, c, d in conn.execute(query.order_by(r.failing_since, r.job_id))]


def failing_in_flight(conn: Connection, route: str = DEFAULT) -> dict[str, str | None]:
    """Jobs of the route in flight whose last GETs failed and that no page has shown since: id ->
    the error."""
    r = job_refresh.c
    query = select(r.job_id, r.error).select_from(job_refresh.join(jobs))
    failing = query.where(r.failures > 0, in_flight_jobs(), on_route(route))
    return {job_id: error for job_id, error in conn.execute(failing)}


def created_at(conn: Connection, job_id: str) -> int | None:
    return conn.execute(select(jobs.c.created_at).where(jobs.c.id == job_id)).scalar()


def listed_before(conn: Connection, created: int, n: int, route: str = DEFAULT) -> list[tuple[str, int]]:
    """Up to n archived jobs, not vanished, created after `created`, nearest first: where a walk
    can resume when the job it was to resume after has gone."""
    query = select(jobs.c.id, jobs.c.created_at)
    query = query.where(jobs.c.created_at > created, jobs.c.vanished_at.is_(None), on_route(route))
    rows = conn.execute(query.order_by(jobs.c.created_at, jobs.c.id).limit(n))
    return [(job_id, when) for job_id, when in rows]


def listed_older_than(conn: Connection, created: int, route: str = DEFAULT) -> bool:
    """Whether the archive holds a job of the route, not vanished, created before `created`."""
    query = select(jobs.c.id).where(
        jobs.c.created_at < created, jobs.c.vanished_at.is_(None), on_route(route)
    )
    return conn.execute(query.limit(1)).first() is not None


def count_created_between(conn: Connection, oldest: int, newest: int, route: str = DEFAULT) -> int:
    between = (jobs.c.created_at >= oldest) & (jobs.c.created_at <= newest)
    query = select(func.count()).where(between, on_route(route))
    return conn.execute(query).scalar_one()


def newest_job(conn: Connection, route: str = DEFAULT) -> tuple[str, int | None] | None:
    """The archived job listed first (the API lists newest first): where a head walk meets the
    archive. Not a vanished one: a head walk would miss it and check it with a GET every run."""
    query = select(jobs.c.id, jobs.c.created_at).where(jobs.c.vanished_at.is_(None), on_route(route))
    query = query.order_by(jobs.c.created_at.desc().nulls_last(), jobs.c.id.desc())
    row = conn.execute(query.limit(1)).first()
    return (row[0], row[1]) if row else None


def spaced_jobs(conn: Connection, n: int, limit: int, route: str = DEFAULT) -> list[tuple[str, int | None]]:
    """Up to n - 1 listed jobs, newest first, that cut the archived history into parts of about as
    many whole pages each: where the segments of a parallel walk start. Each is the last job of a
    page, so the part before it ends with a whole page."""
    listed = jobs.c.vanished_at.is_(None) & jobs.c.created_at.is_not(None) & on_route(route)
    pages = -(-conn.execute(select(func.count()).where(listed)).scalar_one() // limit)
    parts = min(n, pages)
    query = select(jobs.c.id, jobs.c.created_at).where(listed)
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(1)
    cuts = [conn.execute(query.offset(round(k * pages / parts) * limit - 1)).first() for k in range(1, parts)]
    return [(row[0], row[1]) for row in cuts if row is not None]


def let_go(conn: Connection, ids: list[str], route: str, now: float) -> int:
    """These jobs are gone from the route's listing: a job another route lists is no longer the
    route's (its job_routes row goes), the others are marked vanished; how many were marked. (After
    a full walk, listings.let_go_unlisted does the same in SQL, without the ids in memory.)"""
    r = job_routes.c
    elsewhere: set[str] = set()
    for chunk in chunks(ids):
        others = select(r.job_id).where(r.job_id.in_(chunk), r.route != route)
        elsewhere.update(conn.execute(others).scalars())
    for chunk in chunks(sorted(elsewhere)):
        conn.execute(delete(job_routes).where(r.route == route, r.job_id.in_(chunk)))
    return mark_vanished(conn, [i for i in ids if i not in elsewhere], now)


def mark_vanished(conn: Connection, ids: list[str], now: float) -> int:
    """Mark these jobs vanished; how many were not already."""
    marked = 0
    for chunk in chunks(ids):
        marked += conn.execute(
            update(jobs).where(jobs.c.id.in_(chunk), jobs.c.vanished_at.is_(None)).values(vanished_at=now)
        ).rowcount
    return marked


def coverage(conn: Connection, route: str = DEFAULT) -> list[str]:
    """For `archiver status`: why part of the history is unreachable through this route, and since
    when (blocked gaps, one line per reason); then the gaps a cut-off run left for the next sync,
    and the in-flight jobs whose refresh keeps failing. Any line means the archive is incomplete."""
    lines: list[str] = []
    blocked: dict[str, float | None] = {}
    for gap in load_gaps(conn, route):
        if gap.blocked_reason:
            blocked.setdefault(gap.blocked_reason, gap.opened_at)
        else:
            where = f"after job {gap.after_id}" if gap.after_id else "from the head"
            end = f"up to job {gap.until_id}" if gap.until_id else "to the end of the history"
            lines.append(f"coverage: a run was cut off; the next sync walks the jobs {where} {end}")
    since = [f"coverage: partial: {why} (since {reports.utc(opened)})" for why, opened in blocked.items()]
    failing = failing_refreshes(conn, route)
    if failing:
        job_id, first, failures, error = failing[0]
        lines.append(
            f"refresh: {len(failing)} in-flight job{'s' if len(failing) > 1 else ''} could not be "
            f"refreshed (kept as last seen, asked again later); job {job_id} since "
            f"{reports.utc(first)}, {failures} run{'s' if failures > 1 else ''} in a row: {error}"
        )
    return since + lines
