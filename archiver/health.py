"""Is the archive healthy? The verdict `archiver status` prints (OK, PARTIAL, STALE or FAILED) and
the human units it says it in."""

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine

from archiver import db, ledger, lock, reports
from archiver.details import status_lines as details_status
from archiver.errors import ConfigError
from archiver.verify import audit_lines


@dataclass(frozen=True)
class Health:
    """The verdict of `Archive.status`; `ok` is False when `verdict` is STALE or FAILED."""

    verdict: str  # OK, PARTIAL (a success, but the archive knows it is incomplete), STALE or FAILED
    lines: list[str]  # the verdict and why, then the last success: what `archiver status` prints
    last_success: dict[str, Any] | None  # the newest succeeded run (its sync_runs row)
    coverage: list[str]  # open gaps, and final jobs without details: what the next sync fetches, or why not
    running: dict[str, Any] | None = None  # the sync running now: run_id, pid, started_at, jobs_seen
    audit: list[str] | None = None  # the last checkpoint and the last verify (verify.audit_lines)

    @property
    def ok(self) -> bool:
        return self.verdict == "OK"


def status(engine: Engine, max_age: float | None) -> Health:
    """`Archive.status`: gather what the verdict needs in one read, then judge it; with more than
    one route, each route is judged on its own runs and coverage, and the archive is its worst."""
    with engine.connect() as conn:
        synced = db.current(conn) is not None
        names = route_names(conn) if synced else [ledger.DEFAULT]
        seen = {
            r: (
                reports.last_run(conn, route=r) if synced else None,
                reports.last_run(conn, "succeeded", r) if synced else None,
                ledger.coverage(conn, r) if synced else [],
            )
            for r in names
        }
        details = details_status(conn) if synced else []
        audit = audit_lines(conn) if synced else []
    now = time.time()
    held = [last for last, _, _ in seen.values() if last is not None and last.status == "running"]
    pid = lock.lock_holder(engine) if held else None
    verdicts = {
        r: judge(last, ok, max_age, now, pid, listing, details) for r, (last, ok, listing) in seen.items()
    }
    if len(verdicts) == 1:
        return replace(next(iter(verdicts.values())), audit=audit)
    worst = min(verdicts.values(), key=lambda h: VERDICTS.index(h.verdict))
    bad = sum(h.verdict != "OK" for h in verdicts.values())
    lines = [f"{worst.verdict}: {bad} of {len(verdicts)} routes not OK"]
    lines += [f"route {r}: {line}" for r, h in verdicts.items() for line in h.lines]
    coverage = [
        f"route {r}: {line}" for r, h in verdicts.items() for line in h.coverage if line not in details
    ]
    running = next((h.running for h in verdicts.values() if h.running), None)
    return Health(worst.verdict, lines, worst.last_success, coverage + details, running, audit)


VERDICTS = ("FAILED", "STALE", "PARTIAL", "OK")  # the worst first


def route_names(conn: Any) -> list[str]:
    """The routes the archive holds runs or jobs of, in the order they first ran."""
    from sqlalchemy import func, select

    from archiver.models import job_routes, sync_runs

    runs = select(sync_runs.c.route, func.min(sync_runs.c.id)).group_by(sync_runs.c.route)
    named = [r for r, _ in sorted(conn.execute(runs), key=lambda row: row[1])]
    listed = conn.execute(select(job_routes.c.route).distinct()).scalars()
    return named + sorted(set(listed) - set(named)) or [ledger.DEFAULT]


def routes_listing(conn: Any, providers: dict[str, str | None]) -> list[dict[str, Any]]:
    """`archiver routes`: each route (`providers`: those configured, by name, with their provider
    if the config says it; then the others the archive holds) with its jobs, last run, coverage."""
    from sqlalchemy import func, select

    from archiver.models import job_routes, jobs

    rows = []
    for name in [*providers, *(r for r in route_names(conn) if r not in providers)]:
        count = select(func.count()).where(job_routes.c.route == name)
        common = select(jobs.c.provider).where(ledger.on_route(name)).group_by(jobs.c.provider)
        common = common.order_by(func.count().desc(), jobs.c.provider).limit(1)
        last, lines = reports.last_run(conn, route=name), ledger.coverage(conn, name)
        rows.append(
            {
                "route": name,
                "provider": providers.get(name) or conn.execute(common).scalar() or "unknown",
                "jobs": conn.execute(count).scalar_one(),
                "last_run_id": last.id if last else None,
                "last_run_status": last.status if last else None,
                "last_run_utc": reports.utc(last.finished_at or last.started_at) if last else None,
                "coverage": "; ".join(lines) if lines else "complete",
                "configured": name in providers,
            }
        )
    return rows


def judge(
    last: Any,
    ok: Any,
    max_age: float | None,
    now: float,
    pid: str | None,
    listing: list[str],
    details: list[str],
) -> Health:
    """The verdict on the last run `last`, the last success `ok`, the process `pid` that holds the
    run lock if the last run is marked running, and what the archive knows it lacks: `listing`
    (ledger.coverage: parts of the listing, refreshes failing) and `details` (details.status_lines)."""
    coverage, running = listing + details, None
    if pid is not None and last is not None:
        running = {"run_id": last.id, "pid": pid, "started_at": last.started_at, "jobs_seen": last.jobs_seen}
        # the running sync's work in progress (its gaps, the details it has not fetched yet) is not missing
        listing = [line for line in listing if not line.startswith("coverage: a run was cut off")]
        coverage = listing + [line for line in details if "not fetched yet" not in line]
    lines = verdict(
        last, ok, max_age, now, killed=last is not None and last.status == "running" and pid is None
    )
    if listing and lines[0].startswith("OK"):  # the archive knows its listing is incomplete
        lines[0] = "PARTIAL" + lines[0][2:] + "; the archive is incomplete, as said below"
    if running:
        lines.insert(1, running_line(running, last.mode, now))
    return Health(lines[0].split(":")[0], lines, ok._asdict() if ok else None, coverage, running)


def running_line(running: dict[str, Any], mode: str, now: float) -> str:
    """What `archiver status` says of the sync running now."""
    return (
        f"a sync is running: run {running['run_id']} ({mode}), pid {running['pid']}, since "
        f"{reports.utc(running['started_at'])} ({human(now - running['started_at'])} ago), "
        f"{running['jobs_seen'] or 0:,} jobs so far"
    )


def verdict(last: Any, ok: Any, max_age: float | None, now: float, killed: bool = False) -> list[str]:
    """The verdict first (OK, STALE or FAILED) and why; then the last success, if it is not the verdict.

    `killed`: the last run is marked running but no sync holds the lock.
    """
    limit = f" (max age {human(max_age)})" if max_age is not None else ""
    age = 0.0
    if ok is None:
        success = "never synced successfully"
    else:
        age = now - (ok.finished_at or ok.started_at)
        success = (
            f"last successful sync {human(age)} ago{limit}: run {ok.id} at {reports.utc(ok.finished_at)}"
        )
    if last is not None and (killed or last.status not in ("succeeded", "running")):
        if killed:
            ago = human(now - last.started_at)
            why = f"started {ago} ago and is marked running, but no sync holds the lock: it was killed"
        else:
            ago = human(now - (last.finished_at or last.started_at))
            why = f"{last.status} {ago} ago: {last.error or 'no error recorded'}"
        return [f"FAILED: last run {last.id} {why}", success]
    if ok is None or (max_age is not None and age > max_age):
        return [f"STALE: {success}"]
    return [f"OK: {success}"]


def parse_age(value: str) -> float:
    """90, 90s, 30m, 2h, 1d -> seconds; ConfigError naming --max-age otherwise."""
    match = AGE.fullmatch(value)
    if not match:
        raise ConfigError(
            f"--max-age {value!r} is not an age: use a number with s, m, h or d, e.g. 90m or 2h"
        )
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")


def human(seconds: float) -> str:
    """A duration in the unit a person reads best: 85 ms, 12.3 s, 4.5 min, 3.2 h, 1.5 d."""
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    for size, unit, upto in ((1, "s", 60), (60, "min", 60), (3600, "h", 24)):
        if round(seconds / size, 1) < upto:
            return f"{round(seconds / size, 1):g} {unit}"
    return f"{round(seconds / 86400, 1):g} d"
