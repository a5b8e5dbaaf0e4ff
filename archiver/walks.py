"""A walk's pages as transactions: the jobs, the run's counters and the coverage gaps they keep
(the argument is in archiver/sync.py's docstring)."""

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine

from archiver import checkpoints, cursors, interrupts, ledger, listings, normalize
from archiver.client import Api, Page
from archiver.ledger import Gap
from archiver.result import SyncResult
from archiver.store import (
    Batch,
    Job,
    JSONObj,
    PageCounts,
    canonical_json,
    make_batch,
    quarantine,
    upsert_page,
)

log = logging.getLogger(__name__)

REFUSED = "this provider's pagination does not work through the gateway ({})"


@dataclass
class Walk:
    """One pass down the listing from `after` (None: the head). `held`: the gaps it is closing."""

    kind: str  # "head" (to a stop page), "gap" (through a gap), "full" (to the end)
    after: str | None
    held: list[Gap]
    quiet: bool = False  # a head walk has seen a page of known, unchanged, settled jobs
    started_at_head: bool = True
    listed: int | None = None  # notes what it lists as this walk (listings.HEAD or its segment)
    skip: bool = False  # skips the jobs a parallel walk's segments have written this run
    writers: dict[str, int] = field(default_factory=dict)  # of the last page's jobs, before it
    last_created: int | None = None  # for the newest-first check across pages
    last_id: str | None = None  # of the last page written
    cursor_created: int | None = None  # created_at of the job the next page is asked after
    met: set[str] = field(default_factory=set)  # the ends of its gaps it has listed
    resumed: int = 0  # times a cursor proved wrong and the walk resumed elsewhere


@dataclass
class Run:
    """What one run needs while it walks."""

    api: Api
    engine: Engine
    result: SyncResult
    limit: int
    full: bool
    on_page: Callable[[SyncResult], None] | None
    provider: str
    pending: dict[str, int | None]  # in-flight jobs due a refresh, not yet seen again: id -> created_at
    gaps: list[Gap]  # open, as committed
    newest: tuple[str, int | None] | None  # the archive's newest job at the start
    parallel: int = 1  # segments a full walk may fetch at once
    blocked: str | None = None  # the route refuses to page: why
    blocked_at: float | None = None  # when it last refused (a gap blocked unasked waits from then)
    disorder_seen: bool = False
    refresh_rows: set[str] = field(default_factory=set)  # jobs with a job_refresh row
    suspects: dict[str, float] = field(default_factory=dict)  # a GET said 404 before: id -> when
    verified: dict[str, bool | None] = field(default_factory=dict)  # cursors.in_place, asked this run
    unrefreshed: dict[str, str] = field(default_factory=dict)  # in-flight jobs whose GET failed: why
    notes: normalize.Notes = field(default_factory=normalize.Notes)
    keeping: checkpoints.Keeping = field(default_factory=checkpoints.Keeping)  # where its checkpoint goes
    rejected: set[tuple[str | None, str]] = field(default_factory=set)  # (the job before it, its JSON)
    route: str = ledger.DEFAULT  # the route walked: its gaps, its jobs (job_routes)


def write(run: Run, w: Walk, page: Page, batch: Batch | None = None) -> tuple[PageCounts, list[JSONObj]]:
    """One transaction: the jobs (but those a segment wrote, when `w.skip`), the rejected items, the
    walk's gaps, the refresh state of the in-flight jobs seen and the run's counters. A signal
    waits until they are committed and counted."""
    batch = batch or make_batch(page.items, run.notes, page.provider or run.provider)
    canons = [c for _, c in batch.jobs]
    listing = w.kind != "get"
    closed, moved = track_gaps(run, w, page, canons) if listing else ([], [])
    if listing and page.truncated:
        hold_the_rest(
            run, w, page.last_id, next((c["created_at"] for c in canons if c["id"] == page.last_id), None)
        )
        moved = mark_blocked(run, w, NO_HAS_MORE)
    with interrupts.deferred():
        return commit_page(run, w, page, batch, canons, closed, moved)


def commit_page(
    run: Run, w: Walk, page: Page, batch: Batch, canons: list[JSONObj], closed: list[Gap], moved: list[Gap]
) -> tuple[PageCounts, list[JSONObj]]:
    now = time.time()
    jobs, hashes, bad = batch.jobs, batch.hashes, new_rejects(run, page, batch)
    listing = w.kind != "get"
    due = [c["id"] for c in canons if c["id"] in run.pending]
    with run.engine.begin() as conn:
        jobs, hashes = note_listed(conn, run, w, jobs, hashes)
        via = "list" if listing else "get"
        counts = upsert_page(conn, jobs, run.result.run_id, now, hashes, via, run.route)
        refreshes = bool(due or run.refresh_rows) and ledger.record_refreshes(
            conn, canons, counts.changed, due, run.refresh_rows, now
        )
        if bad:
            log.warning(
                "%d items of the page after %s are not jobs; kept in rejected_items", len(bad), page.after
            )
            quarantine(conn, bad, run.result.run_id, page.after, now)
            counts.quiet = False
        ledger.close_gaps(conn, [g.id for g in closed if g.id is not None])
        for gap in moved:
            ledger.save_gap(conn, gap, run.result.run_id, now, run.route)
        r = run.result
        after = replace(  # the result once committed: a rolled-back page counts for nothing
            r,
            seen=r.seen + len(jobs),
            inserted=r.inserted + counts.inserted,
            updated=r.updated + counts.updated,
            unchanged=r.unchanged + counts.unchanged,
            rejected=r.rejected + len(bad),
            requests=run.api.requests,
            pages=r.pages + listing,
        )
        if counts.inserted or counts.updated or counts.returned or bad or closed or moved or refreshes:
            ledger.save_run(conn, r.run_id, **after.counters())
    run.result = after
    counts.quiet = counts.quiet and not due  # in-flight jobs due a refresh were not settled yet
    if listing:
        w.last_id = page.last_id or w.last_id
        known = [c["created_at"] for c in canons if c["id"] == page.last_id]
        w.cursor_created = known[0] if known else w.cursor_created
    run.gaps = [g for g in run.gaps if g not in closed] + [g for g in moved if g not in run.gaps]
    for canon in canons:
        run.pending.pop(canon["id"], None)
    if w.listed == listings.HEAD and not page.has_more and not page.truncated:
        mark_missing_vanished(run, listings.HEAD)
    if run.on_page and listing:
        run.on_page(run.result)
    return counts, canons


def note_listed(
    conn: Connection, run: Run, w: Walk, jobs: list[Job], hashes: dict[str, str]
) -> tuple[list[Job], dict[str, str]]:
    """In the page's transaction: which of its jobs a segment wrote already this run (`w.writers`;
    those are left out when the walk skips them), and what the walk lists, noted as it."""
    ids = [c["id"] for _, c in jobs]
    w.writers = listings.writers(conn, run.result.run_id, ids) if w.skip else {}
    if w.writers:
        jobs = [job for job in jobs if job[1]["id"] not in w.writers]
        hashes = {c["id"]: hashes[c["id"]] for _, c in jobs}
    if w.listed is not None:
        segment = w.listed != listings.HEAD  # a segment notes only what it writes
        listings.note(conn, run.result.run_id, w.listed, [c["id"] for _, c in jobs] if segment else ids)
    return jobs, hashes


def new_rejects(run: Run, page: Page, batch: Batch) -> list[tuple[int, str, Any]]:
    """The page's items that are not jobs, but those this run has kept already: a page that ends
    with one is followed by a page that starts with it (the cursor is the last job's id), and
    a parallel walk's segments may overlap."""
    fresh = []
    for position, reason, item in batch.bad:
        key = (Page(page.items[:position], False, None).last_id or page.after, canonical_json(item))
        if key not in run.rejected:
            run.rejected.add(key)
            fresh.append((position, reason, item))
    return fresh


NO_HAS_MORE = "the API's pages carry no has_more, so nothing beyond the first page can be reached"


def track_gaps(run: Run, w: Walk, page: Page, canons: list[JSONObj]) -> tuple[list[Gap], list[Gap]]:
    """Which gaps this page closes, and which move (or open) to start after it.

    A gap closes at the first listed job created strictly before its end job U (so that jobs
    created in the same second as U are walked in either tie order), once U was listed by this
    walk, lies before where the walk began, or is proven gone or moved by its GET; at the end of
    the listing every gap the walk holds closes. A page out of created_at order makes every gap
    the walk holds run to the end of the listing (a new one opens if it holds none): stored with
    the page, so a cut-off cannot forget it."""
    created = {c["id"]: c["created_at"] for c in canons}
    ids = created.keys()
    w.held = [g for g in w.held if g.id is None or g in run.gaps]  # not those another walk closed
    for gap in run.gaps:  # a walk passing a gap's start carries the gap along (not if it moved)
        passes = gap.after_id in ids and gap.after_created_at in (None, created[gap.after_id])
        if gap not in w.held and (passes or (gap.after_id is None and w.started_at_head)):
            w.held.append(gap)
    if out_of_order(run, w, canons):
        if not w.held:
            w.held.append(Gap(None, None, None, None))
        for gap in w.held:
            gap.until_id = gap.until_created_at = None
    ends = {g.until_id for g in [*w.held, *run.gaps] if g.until_id is not None}  # any gap's: one this
    w.met.update(ends & ids)  # walk carries later lies before it (a tie group cut off in the middle)
    closed = [g for g in w.held if closes(run, w, g, canons)]
    if not page.has_more and not page.truncated:
        closed = list(w.held) + ([g for g in run.gaps if g not in w.held] if w.started_at_head else [])
    w.held = [g for g in w.held if g not in closed]
    for gap in w.held:  # this page was reached, so the route pages (again)
        gap.after_id, gap.blocked_reason, gap.blocked_at = page.last_id, None, None
        gap.after_created_at = created.get(page.last_id) if page.last_id else None
    return closed, list(w.held)


def closes(run: Run, w: Walk, gap: Gap, canons: list[JSONObj]) -> bool:
    if gap.until_id is None:
        return False
    if gap.until_created_at is None:  # its end has no time: only listing it closes the gap
        return gap.until_id in w.met
    if not any(c["created_at"] is not None and c["created_at"] < gap.until_created_at for c in canons):
        return False
    if gap.until_id in w.met or (w.cursor_created is not None and w.cursor_created < gap.until_created_at):
        return True
    if cursors.in_place(run, gap.until_id, gap.until_created_at) is False:
        return True  # gone, or moved: the jobs older than where it was lie past the gap
    log.warning("job %s is listed out of created_at order; walking to the end of the listing", gap.until_id)
    gap.until_id = gap.until_created_at = None
    return False


def mark_blocked(run: Run, w: Walk, reason: str, since: float | None = None) -> list[Gap]:
    """The route will not page past here: the walk's gaps stay open, marked with why (the caller
    stores them); later walks of this run do not ask for another page. `since`: when the route
    last refused, for gaps blocked without asking (None: it refused just now)."""
    run.blocked = reason
    now = since if since is not None else time.time()
    run.blocked_at = now
    held, w.held = [g for g in w.held if g.id is None or g in run.gaps], []  # not those closed since
    for gap in held:
        gap.blocked_reason, gap.blocked_at = reason, now
    run.gaps += [g for g in held if g not in run.gaps]
    return held


def out_of_order(run: Run, w: Walk, canons: list[JSONObj]) -> bool:
    """Whether this page lists a job created after the one before it (or after the cursor)."""
    created = [c["created_at"] for c in canons if c["created_at"] is not None]
    before = w.last_created if w.last_created is not None else w.cursor_created
    if before is not None:
        created.insert(0, before)
    if created:
        w.last_created = created[-1]
    if not any(a < b for a, b in itertools.pairwise(created)):
        return False
    if not run.disorder_seen:
        run.disorder_seen = True
        log.warning("the API does not list jobs newest first; the rest of the listing is walked to its end")
    return True


def block(run: Run, w: Walk, reason: str, refused_now: bool = False) -> None:
    """The route refuses to page past where the walk is: its gaps stay open, marked with why; a
    full walk that holds none opens one from its last page to the end, so that the run says its
    coverage is partial and a later run walks on. A refusal just received counts for every blocked
    gap: each waits another day to be retried."""
    hold_the_rest(run, w, w.last_id, w.cursor_created)
    if not (w.held or refused_now):
        return
    now = time.time()
    again = [g for g in run.gaps if g.blocked_at is not None and g not in w.held] if refused_now else []
    for gap in again:
        gap.blocked_at = now
    with interrupts.deferred(), run.engine.begin() as conn:
        for gap in mark_blocked(run, w, reason, None if refused_now else run.blocked_at) + again:
            ledger.save_gap(conn, gap, run.result.run_id, now, run.route)


def hold_the_rest(run: Run, w: Walk, last_id: str | None, created: int | None) -> None:
    """A full walk from the head that can go no further and holds no gap: it holds one from
    `last_id` (created at `created`) to the end (reused run after run), so that the run says its
    coverage is partial."""
    if w.kind == "full" and w.started_at_head and not w.held:
        rest = next((g for g in run.gaps if g.until_id is None), None) or Gap(None, None, None, None)
        rest.after_id, rest.after_created_at = last_id, created
        w.held.append(rest)


def mark_missing_vanished(run: Run, walk: int) -> None:
    """After a full walk (`walk`: listings.HEAD, or SEGMENTS): archived jobs of the route it did not
    list are gone from its listing (vanished, unless another route lists them: ledger.let_go)."""
    with interrupts.deferred(), run.engine.begin() as conn:
        marked = listings.let_go_unlisted(conn, run.result.run_id, run.route, walk, time.time())
    if marked:
        run.result.vanished += marked
        log.info("%d archived jobs are no longer listed; kept and marked vanished", marked)
