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

import logging
import math
import time
from collections.abc import Callable, Generator

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver import ledger
from archiver.client import Api, Page, fetch_job, iter_pages
from archiver.db import database_error
from archiver.details import DetailOptions, DetailsResult, archive_details
from archiver.errors import ApiError, ArchiverError, Interrupted
from archiver.ledger import Gap
from archiver.parallel import cut_points, walk_parallel
from archiver.result import SyncResult
from archiver.store import Batch, JSONObj, PageCounts, make_batch
from archiver.streams import ahead
from archiver.walks import REFUSED, Run, Walk, block, write

__all__ = ["SyncResult", "sync"]

log = logging.getLogger(__name__)

RETRY_BLOCKED_AFTER = 86400.0  # a route that refused to page is asked again a day later


def sync(
    api: Api,
    engine: Engine,
    *,
    full: bool = False,
    limit: int = 100,
    provider: str = "unknown",
    parallel: int = 1,
    on_page: Callable[[SyncResult], None] | None = None,
    details: DetailOptions | None = None,
    on_details: Callable[[DetailsResult], None] | None = None,
) -> SyncResult:
    """Archive the job list. The caller holds the run lock; the run is recorded in sync_runs
    whatever happens (a run left `running` by a killed process becomes `abandoned` here)."""
    mode = "full" if full else "incremental"
    now = time.time()
    api.stopping.clear()  # an Api a failed run stopped may serve the next one
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, mode, str(api.http.base_url), now)
        pending, gaps, newest = ledger.load_in_flight(conn), ledger.load_gaps(conn), ledger.newest_job(conn)
    blocked = [g for g in gaps if g.blocked_at is not None and now - g.blocked_at < RETRY_BLOCKED_AFTER]
    run = Run(api, engine, SyncResult(run_id, mode), limit, full, on_page, provider, pending, gaps, newest)
    run.parallel = parallel
    run.blocked = blocked[0].blocked_reason if blocked else None
    try:
        walk_all(run)
        if details is not None:  # then the details of the jobs that became final
            run.result.details = archive_details(api, engine, run_id, details, on_details)
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
    written: dict[str, int] = {}  # by the segments of a parallel walk
    if not (cuts and walk_parallel(run, own, cuts, written)):
        if cuts:
            log.info("the segments did not walk the whole listing: walking it from the head")
            run.blocked = None  # a refusal there may have been a purged cursor: the head walk tells
        walk(run, Walk(kind, None, [own], listed=listed, skip=written))
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
    except BaseException:
        run.api.stopping.set()  # a fetch waiting to retry gives up: the run is ending
        raise
    finally:
        pages.close()  # a prefetching thread stops before its next page


def batches(run: Run, after: str | None, prefetch: bool) -> Generator[tuple[Page, Batch], None, None]:
    """The walk's pages from `after`, each with its batch. With `prefetch`, one thread fetches
    (asking for the next page as soon as one arrives) and another normalizes and hashes."""
    pages = (
        (page, make_batch(page.items, run.notes, page.provider or run.provider))
        for page in iter_pages(run.api, run.limit, after, prefetch=prefetch)
    )
    return ahead(pages, 1, abort=run.api.stopping) if prefetch else pages


def end_walk(run: Run, w: Walk, blocked: str | None, refused_now: bool = False) -> None:
    """The walk can go no further: the end of the listing, or the route refuses to page (why)."""
    if blocked:
        block(run, w, blocked, refused_now)
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
