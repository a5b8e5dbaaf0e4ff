"""One sync run: walks over the API's listing, one transaction per page, and the coverage they keep.

The listing is newest first; new jobs enter at its head (a run that sees `created_at` increase
stops trusting this and walks to the end). Jobs may leave it anywhere (providers purge them).

Coverage. The archive stores, in `sync_gaps`, every part of the listing that may hold jobs it has
never archived: a gap is "the jobs after job A (or the head) and before job U (or the end)", U
being an archived job, or any job created before U should U itself vanish. The invariant:

    every listed job that is not archived is newer than every archived job, or lies in a gap.

Each kind of walk keeps it, because each page's jobs and the walk's gaps commit in one transaction:

- A head walk starts at the head, where only new jobs lie until it meets U = the newest archived
  job. After each page it records the gap (last job of the page, U) and it closes that gap on
  reaching U. Cut off at any page, the jobs it did not reach are inside its gap.
- A gap walk resumes a gap after A, moves A along with every page and closes the gap at U.
- A full walk is a head walk that never stops early.
- A parallel full walk is several full walks at once, the first from the head, each other one
  from an archived job, each ending where the next begins. Like any walk, each carries the gaps it
  passes; none closes every gap at the end of the listing, since none of them walked from the head
  there; together they did once every one ended where its part ends, and every gap closes then.
- Any walk that passes a gap's A carries that gap along (it walks it, so the gap moves with it);
  a walk from the head that reaches the end has walked everything and closes every gap.

So the stop rule is safe: a head walk stops only after meeting U, at a page whose jobs are all
archived, unchanged and not in flight, once every job the archive holds in flight has been seen
again (paging on, or one GET each when that is cheaper); then the run walks every open gap. After
a successful run no gap is left, except where the route refuses to page (`blocked_reason`, tried
again a day later): the archive then equals the listing but for what that gap hides.

A job the API no longer knows (404 on its GET, or missing from a full walk that reached the end)
stays in the archive with `vanished_at` set and is no longer refreshed.
"""

import itertools
import logging
import math
import time
from collections.abc import Callable, Container, Generator, Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver import ledger, normalize
from archiver.client import Api, Page, fetch_job, iter_pages, walk_pages
from archiver.db import database_error
from archiver.errors import ApiError, ArchiverError, Interrupted
from archiver.ledger import Gap
from archiver.result import SyncResult
from archiver.store import Batch, JSONObj, PageCounts, make_batch, quarantine, upsert_page
from archiver.streams import Streams, ahead

__all__ = ["SyncResult", "sync"]

log = logging.getLogger(__name__)

RETRY_BLOCKED_AFTER = 86400.0  # a route that refused to page is asked again a day later
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
    last_created: int | None = None  # for the newest-first check across pages


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


def sync(
    api: Api,
    engine: Engine,
    *,
    full: bool = False,
    limit: int = 100,
    provider: str = "unknown",
    parallel: int = 1,
    on_page: Callable[[SyncResult], None] | None = None,
) -> SyncResult:
    """Archive the job list. The caller holds the run lock; the run is recorded in sync_runs
    whatever happens (a run left `running` by a killed process becomes `abandoned` here)."""
    mode = "full" if full else "incremental"
    now = time.time()
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, mode, str(api.http.base_url), now)
        pending, gaps, newest = ledger.load_in_flight(conn), ledger.load_gaps(conn), ledger.newest_job(conn)
    blocked = [g for g in gaps if g.blocked_at is not None and now - g.blocked_at < RETRY_BLOCKED_AFTER]
    run = Run(api, engine, SyncResult(run_id, mode), limit, full, on_page, provider, pending, gaps, newest)
    run.parallel = parallel
    run.blocked = blocked[0].blocked_reason if blocked else None
    try:
        walk_all(run)
    except ArchiverError as e:
        finish(run, "failed", str(e))
        raise
    except DBAPIError as e:
        error = database_error(e)
        finish(run, "failed", str(error))
        raise error from None
    except (KeyboardInterrupt, Interrupted):
        finish(run, "interrupted", "interrupted by a signal")
        raise
    except Exception as e:  # a bug: recorded, then it keeps its traceback
        finish(run, "failed", f"{type(e).__name__}: {e}")
        raise
    finish(run, "succeeded")
    return run.result


def walk_all(run: Run) -> None:
    """The head walk (or a full one), then every gap it left open."""
    own = Gap(None, None, *(run.newest or (None, None)))  # the head walk's gap, stored once needed
    kind = "full" if run.full else "head"
    listed: set[str] | None = set() if run.full and run.newest else None
    cuts = cut_points(run) if run.full and run.parallel > 1 and run.newest and not run.blocked else []
    if cuts:
        walk_parallel(run, own, cuts)
    else:
        walk(run, Walk(kind, None, [own], listed=listed))
    for gap in list(run.gaps):
        if gap in run.gaps and (gap.blocked_at is None or run.blocked is None):
            walk(run, Walk("gap", gap.after_id, [gap], started_at_head=gap.after_id is None))
    blocked = [g for g in run.gaps if g.blocked_reason]
    if blocked:
        run.result.partial = blocked[0].blocked_reason
        after = f"after job {blocked[0].after_id}" if blocked[0].after_id else "beyond the first page"
        log.warning("coverage is partial: the history %s is unreachable: %s", after, run.result.partial)


def walk(run: Run, w: Walk) -> None:
    """Fetch and write pages until the walk's kind says stop. Walks that end only at the end of
    their gaps or of the listing fetch, normalize and hash the next pages on another thread while
    this one is written."""
    prefetch = not run.blocked and (w.kind == "full" or any(g.until_id is None for g in w.held))
    pages, received = batches(run, w.after, prefetch), 0
    try:
        while True:
            try:
                page, batch = next(pages)
            except StopIteration:
                return end_walk(run, w, None)
            except ApiError as e:
                if e.status != 400 or (received == 0 and w.after is None):
                    raise
                known = run.blocked or any(g.blocked_reason for g in w.held)  # refused cursors before
                if received == 0 and not known:  # a stored cursor was refused: its job may be gone
                    log.warning("the API refused to resume after %s (%s); walking from the head", w.after, e)
                    w.after, w.started_at_head = None, True
                    pages = batches(run, None, prefetch)
                    continue
                return end_walk(run, w, REFUSED.format(e), refused_now=True)
            received += 1
            counts, jobs = write(run, w, page, batch)
            if not page.has_more:
                return end_walk(run, w, None)
            if stop_here(run, w, counts, jobs):
                return
            if run.blocked:  # known to refuse cursors: do not ask again this run
                return end_walk(run, w, run.blocked)
    finally:
        pages.close()  # a prefetching thread stops before its next page


def batches(run: Run, after: str | None, prefetch: bool) -> Generator[tuple[Page, Batch], None, None]:
    """The walk's pages from `after`, each with its batch. With `prefetch`, one thread fetches
    (asking for the next page as soon as one arrives) and another normalizes and hashes."""
    pages = (
        (page, make_batch(page.items, run.notes, page.provider or run.provider))
        for page in iter_pages(run.api, run.limit, after, prefetch=prefetch)
    )
    return ahead(pages, 1) if prefetch else pages


@dataclass(eq=False)
class Segment:
    """A part of a parallel full walk: the jobs after `start` (None: the head) up to the job
    `bound` (None: the end), or up to the first job a later segment has written (`bound` may have
    vanished). `stream` numbers its fetches: one more each time it walks on from `last_id` to take
    over the next segment's part."""

    walk: Walk
    start: tuple[str, int | None] | None
    bound: str | None
    state: str = "walking"  # then "bounded", "end" (of the listing), "handed over" or "blocked"
    stream: int = 0
    pages: int = 0
    last_id: str | None = None


def cut_points(run: Run) -> list[tuple[str, int | None]]:
    with run.engine.connect() as conn:
        return ledger.spaced_jobs(conn, run.parallel, run.limit)


def walk_parallel(run: Run, own: Gap, cuts: list[tuple[str, int | None]]) -> None:
    """A full walk as segments fetched at once, each starting after a job the archive knows and
    ending where the next begins, all written by this thread (a job two of them list is written
    once). A segment whose cursor is refused, or which the API lists from elsewhere, hands its
    part to the one before it. When every part was walked, this is a full walk that reached the
    end: every gap closes and what was not listed is marked vanished; otherwise the gaps stay as
    the segments left them, exactly as their walks would leave them one after the other."""
    starts: list[tuple[str, int | None] | None] = [None, *cuts]
    segments = [
        Segment(
            Walk("full", start[0] if start else None, [] if start else [own], started_at_head=not start),
            start,
            cuts[i][0] if i < len(cuts) else None,
        )
        for i, start in enumerate(starts)
    ]
    listed: dict[str, int] = {}  # job id -> the segment that wrote it
    streams: Streams[tuple[int, int]] = Streams(depth=2)
    try:
        for i, seg in enumerate(segments):
            streams.start((i, 0), segment_pages(run, seg.walk.after))
        while any(seg.state == "walking" for seg in segments):
            (i, _), ok, value = streams.get()
            seg = segments[i]
            fresh = seg.start if seg.pages == 0 else None  # where a segment that has no page yet starts
            if not ok and isinstance(value, ApiError) and value.status == 400 and (fresh or seg.pages):
                if fresh:
                    log.info("the API refused to page after %s; the segment before walks on", fresh[0])
                    hand_over(run, segments, i, streams)
                else:
                    seg.state = "blocked"
                    end_walk(run, seg.walk, REFUSED.format(value), refused_now=True)
                continue
            if not ok:
                raise value if value is not None else AssertionError("a walk ended before its last page")
            page, batch = value
            if fresh and not lists_after(batch, fresh):
                log.info("the API did not list the jobs after %s; the segment before walks on", fresh[0])
                streams.stop((i, seg.stream))
                hand_over(run, segments, i, streams)
                continue
            _, canons = write(run, seg.walk, page, batch, skip=listed)
            seg.pages, seg.last_id = seg.pages + 1, page.last_id or seg.last_id
            if page.truncated:
                seg.state = "blocked"
            elif not page.has_more:
                seg.state = "end"
            elif any(c["id"] == seg.bound or listed.get(c["id"], i) > i for c in canons):
                seg.state = "bounded"
            for canon in canons:
                listed.setdefault(canon["id"], i)
            if seg.state != "walking":
                streams.stop((i, seg.stream))
    finally:
        streams.close()
    if all(seg.state in ("bounded", "end", "handed over") for seg in segments):
        with run.engine.begin() as conn:
            ledger.close_gaps(conn, [g.id for g in run.gaps if g.id is not None])
        run.gaps = []
        mark_missing_vanished(run, set(listed))


def segment_pages(run: Run, after: str | None) -> Iterator[tuple[Page, Batch]]:
    for page in walk_pages(run.api, run.limit, after):
        yield page, make_batch(page.items, run.notes, page.provider or run.provider)


def lists_after(batch: Batch, start: tuple[str, int | None]) -> bool:
    """Whether a segment's first page plausibly follows its start: some job, none newer than it."""
    created = [c["created_at"] for _, c in batch.jobs]
    return bool(created) and (start[1] is None or created[0] is None or created[0] <= start[1])


def hand_over(run: Run, segments: list[Segment], i: int, streams: Streams[tuple[int, int]]) -> None:
    """Segment i cannot walk its part: the segment before it walks on to i's bound, starting
    again from its last page if it had stopped at its own."""
    segments[i].state = "handed over"
    j = max(k for k in range(i) if segments[k].state != "handed over")
    prev = segments[j]
    prev.bound = segments[i].bound
    if prev.state == "bounded":
        prev.state, prev.stream = "walking", prev.stream + 1
        streams.start((j, prev.stream), segment_pages(run, prev.last_id))


def end_walk(run: Run, w: Walk, blocked: str | None, refused_now: bool = False) -> None:
    """The walk can go no further: the end of the listing, or the route refuses to page (why).
    A refusal just received counts for every blocked gap: each waits another day to be retried."""
    if blocked and (w.held or refused_now):
        now = time.time()
        again = [g for g in run.gaps if g.blocked_at is not None and g not in w.held] if refused_now else []
        for gap in again:
            gap.blocked_at = now
        with run.engine.begin() as conn:
            for gap in mark_blocked(run, w, blocked) + again:
                ledger.save_gap(conn, gap, run.result.run_id, now)
    if w.kind == "head":
        settle(run, None, may_page=False)


def stop_here(run: Run, w: Walk, counts: PageCounts, jobs: list[JSONObj]) -> bool:
    """The one place a walk decides to stop before the end of the listing."""
    if w.kind == "gap":
        return not w.held  # its gap (and any it carried along) is closed
    w.quiet = w.quiet or counts.quiet
    if w.held or w.kind == "full" or not run.order_ok:
        return False
    return w.quiet and settle(run, jobs[-1]["created_at"] if jobs else None, may_page=True)


def write(
    run: Run, w: Walk, page: Page, batch: Batch | None = None, skip: Container[str] = ()
) -> tuple[PageCounts, list[JSONObj]]:
    """One transaction: the jobs (but those in `skip`, written already), the rejected items, the
    walk's gaps and the run's counters."""
    now = time.time()
    batch = batch or make_batch(page.items, run.notes, page.provider or run.provider)
    canons = [c for _, c in batch.jobs]
    jobs, hashes, bad = batch.jobs, batch.hashes, batch.bad
    if skip:
        jobs = [job for job in jobs if job[1]["id"] not in skip]
        hashes = {c["id"]: hashes[c["id"]] for _, c in jobs}
    listing = w.kind != "get"
    closed, moved = track_gaps(run, w, page, canons) if listing else ([], [])
    if listing:
        check_order(run, w, canons)
        if page.truncated:
            moved = mark_blocked(run, w, NO_HAS_MORE)
    with run.engine.begin() as conn:
        counts = upsert_page(conn, jobs, run.result.run_id, now, hashes)
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
    held, w.held = w.held, []
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


def settle(run: Run, here: int | None, may_page: bool) -> bool:
    """True when every in-flight job has been seen again, fetching them one by one when that is
    cheaper than paging on (or when paging on is not possible)."""
    if not run.pending:
        return True
    ahead = {i: c for i, c in run.pending.items() if c is not None and here is not None and c <= here}
    if may_page and ahead and not run.blocked:
        with run.engine.connect() as conn:
            pages_left = math.ceil(
                ledger.count_created_between(conn, min(ahead.values()), here or 0) / run.limit
            )
        if len(ahead) > pages_left:
            return False  # paging on reaches them sooner (the rest, passed unseen, need a GET anyway)
    log.info("fetching %d in-flight jobs one by one", len(run.pending))
    fetched = {job_id: fetch_job(run.api, job_id) for job_id in list(run.pending)}
    gone = [job_id for job_id, job in fetched.items() if job is None]
    found = [job for job in fetched.values() if job is not None]
    write(run, Walk("get", None, []), Page(found, False, None))
    if gone:
        with run.engine.begin() as conn:
            ledger.mark_vanished(conn, gone, time.time())
        run.result.vanished += len(gone)
        log.info("%d jobs are gone from the API (404); kept and marked vanished", len(gone))
    run.pending.clear()
    return True


def mark_missing_vanished(run: Run, listed: set[str]) -> None:
    """After a full walk: archived jobs it did not see are gone from the listing."""
    with run.engine.begin() as conn:
        missing = [job_id for job_id in ledger.listed_ids(conn) if job_id not in listed]
        ledger.mark_vanished(conn, missing, time.time())
    if missing:
        run.result.vanished += len(missing)
        log.info("%d archived jobs are no longer listed; kept and marked vanished", len(missing))


def finish(run: Run, status: str, error: str | None = None) -> None:
    run.notes.flush()
    result = run.result
    result.requests = run.api.requests
    values = {"status": status, "error": error, "finished_at": time.time(), **result.counters()}
    try:
        with run.engine.begin() as conn:
            ledger.save_run(conn, result.run_id, **values)
    except DBAPIError as e:  # the archive itself may be what failed; the original error matters more
        log.warning("could not record the run's end: %s", database_error(e))
