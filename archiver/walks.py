"""A walk's pages as transactions: the jobs, the run's counters and the coverage gaps they keep
(the argument is in archiver/sync.py's docstring)."""

import itertools
import logging
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine

from archiver import ledger, normalize
from archiver.client import Api, Page
from archiver.ledger import Gap
from archiver.result import SyncResult
from archiver.store import Batch, JSONObj, PageCounts, canonical_json, make_batch, quarantine, upsert_page

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
    listed: set[str] | None = None  # ids seen, when a full walk is to mark the missing as vanished
    skip: Container[str] = ()  # ids written already this run (by a parallel walk's segments)
    last_created: int | None = None  # for the newest-first check across pages
    last_id: str | None = None  # of the last page written


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
    pending: dict[str, int | None]  # in-flight jobs not yet seen again: id -> created_at
    gaps: list[Gap]  # open, as committed
    newest: tuple[str, int | None] | None  # the archive's newest job at the start
    parallel: int = 1  # segments a full walk may fetch at once
    blocked: str | None = None  # the route refuses to page: why
    order_ok: bool = True
    notes: normalize.Notes = field(default_factory=normalize.Notes)
    rejected: set[tuple[str | None, str]] = field(default_factory=set)  # (the job before it, its JSON)


def write(run: Run, w: Walk, page: Page, batch: Batch | None = None) -> tuple[PageCounts, list[JSONObj]]:
    """One transaction: the jobs (but those in `w.skip`, written already), the rejected items, the
    walk's gaps and the run's counters."""
    now = time.time()
    batch = batch or make_batch(page.items, run.notes, page.provider or run.provider)
    canons = [c for _, c in batch.jobs]
    jobs, hashes, bad = batch.jobs, batch.hashes, new_rejects(run, page, batch)
    if w.skip:
        jobs = [job for job in jobs if job[1]["id"] not in w.skip]
        hashes = {c["id"]: hashes[c["id"]] for _, c in jobs}
    listing = w.kind != "get"
    closed, moved = track_gaps(run, w, page, canons) if listing else ([], [])
    if listing:
        check_order(run, w, canons)
        if page.truncated:
            moved = mark_blocked(run, w, NO_HAS_MORE)
    with run.engine.begin() as conn:
        counts = upsert_page(conn, jobs, run.result.run_id, now, hashes, "list" if listing else "get")
        if bad:
            log.warning(
                "%d items of the page after %s are not jobs; kept in rejected_items", len(bad), page.after
            )
            quarantine(conn, bad, run.result.run_id, page.after, now)
            counts.quiet = False
        ledger.close_gaps(conn, [g.id for g in closed if g.id is not None])
        for gap in moved:
            ledger.save_gap(conn, gap, run.result.run_id, now)
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
        if counts.inserted or counts.updated or counts.returned or bad or closed or moved:
            ledger.save_run(conn, r.run_id, **after.counters())
    run.result = after
    w.last_id = page.last_id or w.last_id
    run.gaps = [g for g in run.gaps if g not in closed] + [g for g in moved if g not in run.gaps]
    for canon in canons:
        run.pending.pop(canon["id"], None)
    if w.listed is not None:
        w.listed.update(c["id"] for c in canons)
        if not page.has_more and not page.truncated:
            mark_missing_vanished(run, w.listed)
    if run.on_page and listing:
        run.on_page(run.result)
    return counts, canons


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
    """Which gaps this page closes, and which move (or open) to start after it."""
    ids = {c["id"] for c in canons}
    w.held = [g for g in w.held if g.id is None or g in run.gaps]  # not those another walk closed
    for gap in run.gaps:  # a walk passing a gap's start carries the gap along
        if gap not in w.held and (gap.after_id in ids or (gap.after_id is None and w.started_at_head)):
            w.held.append(gap)
    closed = [g for g in w.held if any(g.closes_at(c) for c in canons)]
    if not page.has_more and not page.truncated:
        closed = list(w.held) + ([g for g in run.gaps if g not in w.held] if w.started_at_head else [])
    w.held = [g for g in w.held if g not in closed]
    for gap in w.held:  # this page was reached, so the route pages (again)
        gap.after_id, gap.blocked_reason, gap.blocked_at = page.last_id, None, None
    return closed, list(w.held)


def mark_blocked(run: Run, w: Walk, reason: str) -> list[Gap]:
    """The route will not page past here: the walk's gaps stay open, marked with why (the caller
    stores them); later walks of this run do not ask for another page."""
    run.blocked = reason
    now = time.time()
    held, w.held = [g for g in w.held if g.id is None or g in run.gaps], []  # not those closed since
    for gap in held:
        gap.blocked_reason, gap.blocked_at = reason, now
    run.gaps += [g for g in held if g not in run.gaps]
    return held


def check_order(run: Run, w: Walk, canons: list[JSONObj]) -> None:
    """The stop rule trusts newest-first order; if created_at ever increases, walk to the end."""
    created = [c["created_at"] for c in canons if c["created_at"] is not None]
    if w.last_created is not None:
        created.insert(0, w.last_created)
    if run.order_ok and any(a < b for a, b in itertools.pairwise(created)):
        run.order_ok = False
        log.warning("the API does not list jobs newest first; walking the whole history this run")
    if created:
        w.last_created = created[-1]


def block(run: Run, w: Walk, reason: str, refused_now: bool = False) -> None:
    """The route refuses to page past where the walk is: its gaps stay open, marked with why; a
    full walk that holds none opens one from its last page to the end, so that the run says its
    coverage is partial and a later run walks on. A refusal just received counts for every blocked
    gap: each waits another day to be retried."""
    if w.kind == "full" and w.started_at_head and not w.held:  # one gap for the rest, reused
        rest = next((g for g in run.gaps if g.until_id is None), None) or Gap(None, None, None, None)
        rest.after_id = w.last_id  # walked from the head to here: a gap to the end may start here
        w.held.append(rest)
    if not (w.held or refused_now):
        return
    now = time.time()
    again = [g for g in run.gaps if g.blocked_at is not None and g not in w.held] if refused_now else []
    for gap in again:
        gap.blocked_at = now
    with run.engine.begin() as conn:
        for gap in mark_blocked(run, w, reason) + again:
            ledger.save_gap(conn, gap, run.result.run_id, now)


def mark_missing_vanished(run: Run, listed: Container[str]) -> None:
    """After a full walk: archived jobs it did not see are gone from the listing."""
    with run.engine.begin() as conn:
        missing = [job_id for job_id in ledger.listed_ids(conn) if job_id not in listed]
        ledger.mark_vanished(conn, missing, time.time())
    if missing:
        run.result.vanished += len(missing)
        log.info("%d archived jobs are no longer listed; kept and marked vanished", len(missing))
