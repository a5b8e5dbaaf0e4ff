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
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver import chain, checkpoints, cursors, interrupts, ledger, listings
from archiver.client import Api, Page, iter_pages
from archiver.db import database_error
from archiver.details import DetailOptions, DetailsResult, archive_details
from archiver.errors import ApiError, ArchiverError, Interrupted
from archiver.ledger import Gap
from archiver.parallel import cut_points, walk_parallel
from archiver.refresh import settle
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
    keeping: checkpoints.Keeping = checkpoints.NOWHERE,
    route: str = ledger.DEFAULT,
) -> SyncResult:
    """Archive the job list `api` serves, as route `route` (its own gaps, in-flight set and stop
    rule: archiver/routes.py). The caller holds the run lock; the run is recorded in sync_runs
    whatever happens (a run left `running` by a killed process becomes `abandoned` here), its row
    the newest link of the audit chain, whose head is the run's checkpoint (kept as `keeping` says)."""
    api.stopping.clear()  # an Api a failed run stopped may serve the next one
    run: Run | None = None
    try:
        with interrupts.deferred():  # a signal waits until the run can be recorded as interrupted
            run = start(api, engine, full, limit, provider, parallel, on_page, route)
            run.keeping = keeping
        walk_all(run)
        with engine.connect() as conn:  # in flight, their GETs failing, not asked again yet: stale
            waiting = ledger.failing_in_flight(conn, route)
        run.unrefreshed = {**{i: f"not asked again yet: {e}" for i, e in waiting.items()}, **run.unrefreshed}
        run.result.unrefreshed = dict(run.unrefreshed)
        if details is not None:  # then the details of the jobs that became final
            options = replace(details, route=route)
            run.result.details = archive_details(api, engine, run.result.run_id, options, on_details)
    except BaseException as e:
        if run is None:  # nothing was recorded: the caller says where the database failed
            raise
        record_end(run, e)
        if isinstance(e, DBAPIError):
            raise database_error(e) from None
        raise
    finish(run, "succeeded")
    return run.result


def start(
    api: Api,
    engine: Engine,
    full: bool,
    limit: int,
    provider: str,
    parallel: int,
    on_page: Callable[[SyncResult], None] | None,
    route: str = ledger.DEFAULT,
) -> Run:
    """Record the run's start and load what it needs: the in-flight jobs due a refresh, the gaps,
    the newest archived job."""
    mode, now = "full" if full else "incremental", time.time()
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, mode, str(api.http.base_url), now, route)
        pending = ledger.load_in_flight(conn, now, everything=full, route=route)
        gaps, newest = ledger.load_gaps(conn, route), ledger.newest_job(conn, route)
        rows, unknown = ledger.load_refresh_rows(conn), ledger.unknown_statuses(conn)
    blocked = [g for g in gaps if g.blocked_at is not None and now - g.blocked_at < RETRY_BLOCKED_AFTER]
    run = Run(api, engine, SyncResult(run_id, mode), limit, full, on_page, provider, pending, gaps, newest)
    run.parallel, run.route = parallel, route
    run.blocked = blocked[0].blocked_reason if blocked and not full else None  # --full asks again
    run.blocked_at = max(g.blocked_at or 0.0 for g in blocked) if run.blocked else None
    run.refresh_rows, run.suspects = set(rows), {i: t for i, t in rows.items() if t is not None}
    if unknown[0]:
        log.warning(
            "%d archived jobs have a status archiver does not know (such as %r): refreshed while "
            "they change, then less and less often",
            *unknown,
        )
    return run


def record_end(run: Run, e: BaseException) -> None:
    """A run that raised: `interrupted` for a signal, else `failed` with the error's line (any
    exception, bugs included, which keep their traceback)."""
    if isinstance(e, KeyboardInterrupt | Interrupted):
        finish(run, "interrupted", "interrupted by a signal")
    elif isinstance(e, ArchiverError):
        finish(run, "failed", str(e))
    elif isinstance(e, DBAPIError):
        finish(run, "failed", str(database_error(e)))
    else:
        finish(run, "failed", f"{type(e).__name__}: {e}")


def walk_all(run: Run) -> None:
    """The head walk (or a full one), then every gap left open, those its walks open included."""
    own = Gap(None, None, *(run.newest or (None, None)))  # the head walk's gap, stored once needed
    kind = "full" if run.full else "head"
    listed = listings.HEAD if run.full and run.newest else None  # to let go of the unlisted
    cuts = cut_points(run) if run.full and run.parallel > 1 and run.newest and not run.blocked else []
    if not (cuts and walk_parallel(run, own, cuts)):
        if cuts:
            log.info("the segments did not walk the whole listing: walking it from the head")
            run.blocked = None  # a refusal there may have been a purged cursor: the head walk tells
        walk(run, Walk(kind, None, [own], listed=listed, skip=bool(cuts)))  # not what segments wrote
    walked: set[int | None] = set()
    while gap := next((g for g in run.gaps if id(g) not in walked and walkable(run, g)), None):
        walked.add(id(gap))
        created = gap.after_created_at
        if created is None and gap.after_id:  # a gap from before revision 0009
            with run.engine.connect() as conn:
                created = ledger.created_at(conn, gap.after_id)
        head = gap.after_id is None
        walk(run, Walk("gap", gap.after_id, [gap], started_at_head=head, cursor_created=created))
    blocked = [g for g in run.gaps if g.blocked_reason]
    if blocked:
        run.result.partial = blocked[0].blocked_reason
        after = f"after job {blocked[0].after_id}" if blocked[0].after_id else "beyond the first page"
        log.warning("coverage is partial: the history %s is unreachable: %s", after, run.result.partial)


def walkable(run: Run, gap: Gap) -> bool:
    return gap.blocked_at is None or run.blocked is None


def walk(run: Run, w: Walk) -> None:
    """Fetch and write pages until the walk's kind says stop, resuming elsewhere whenever its
    cursor proves wrong (archiver/cursors.py). A gap walk first checks the job it resumes after."""
    if w.kind == "gap" and w.after is not None and not cursors.in_place(run, w.after, w.cursor_created):
        cursors.resume_elsewhere(run, w, w.after, f"job {w.after}, where a gap begins, is gone or has moved")
    while walk_on(run, w):
        pass


def walk_on(run: Run, w: Walk) -> bool:
    """Pages from `w.after` until the walk ends (False) or must resume elsewhere (True). Walks that
    end only at the end of their gaps or of the listing fetch, normalize and hash the next pages on
    another thread while this one is written."""
    prefetch = not run.blocked and (w.kind == "full" or any(g.until_id is None for g in w.held))
    pages, received = batches(run, w.after, prefetch), 0
    try:
        while True:
            try:
                page, batch = next(pages)
            except StopIteration:
                end_walk(run, w, None)
                return False
            except ApiError as e:
                cursor = w.last_id if received else w.after
                if e.status not in (400, 404) or cursor is None:
                    raise
                if cursors.in_place(run, cursor, w.cursor_created, fresh=True):
                    end_walk(run, w, REFUSED.format(e), refused_now=True)
                    return False
                why = f"the API refused to resume after job {cursor} ({e})"
                cursors.resume_elsewhere(run, w, cursor, why)
                return True
            received += 1
            created = [c["created_at"] for _, c in batch.jobs]
            ends = not page.has_more and not page.truncated
            cursor = page.after
            if (
                cursor is not None
                and not cursors.follows(run, w, created, ends)
                and not cursors.in_place(run, cursor, w.cursor_created)
            ):
                why = f"the page the API sent after job {cursor} cannot follow it"
                cursors.resume_elsewhere(run, w, cursor, why)
                return True
            counts, jobs = write(run, w, page, batch)
            if not page.has_more:
                end_walk(run, w, None)
                return False
            if stop_here(run, w, counts, jobs):
                return False
            if run.blocked:  # known to refuse cursors: do not ask again this run
                end_walk(run, w, run.blocked)
                return False
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
    """The walk can go no further: the end of the listing, or the route refuses to page (why).
    A walk from the head that could not reach the end fetches the in-flight jobs it did not see."""
    if blocked:
        block(run, w, blocked, refused_now)
    if w.kind == "head" or (w.kind == "full" and w.started_at_head and (blocked or run.blocked)):
        settle(run, None, may_page=False, walked_all=not (blocked or run.blocked))
    elif w.kind == "full" and w.started_at_head:
        run.pending.clear()  # listed or not, a full walk to the end has seen all it could


def stop_here(run: Run, w: Walk, counts: PageCounts, jobs: list[JSONObj]) -> bool:
    """The one place a walk decides to stop before the end of the listing."""
    if w.kind == "gap":
        return not w.held  # its gap (and any it carried along) is closed
    w.quiet = w.quiet or counts.quiet
    if w.held or w.kind == "full":
        return False
    return w.quiet and settle(run, jobs[-1]["created_at"] if jobs else None, may_page=True)


def finish(run: Run, status: str, error: str | None = None) -> None:
    """Record the run's end; a signal meanwhile is acted on once it is recorded."""
    with interrupts.deferred():
        run.notes.flush()
        result = run.result
        result.requests = run.api.requests
        now = time.time()
        values = {"status": status, "error": error, "finished_at": now, **result.counters()}
        try:
            with run.engine.begin() as conn:
                ledger.end_run(conn, result.run_id, **values)
                head = chain.head(conn)
        except DBAPIError as e:  # the archive itself may be what failed; the original error matters more
            log.warning("could not record the run's end: %s", database_error(e))
            return
        if head is not None:  # the run's row is the chain's newest link: its checkpoint
            result.checkpoint = checkpoints.mark(*head, now, run.keeping.key)
            if run.keeping.log is not None:
                keep(result.checkpoint, run.keeping.log)


def keep(mark: checkpoints.Mark, path: Path) -> None:
    """Append the checkpoint to the log kept elsewhere; failing that, say so (the run's row keeps it)."""
    try:
        checkpoints.append(path, mark)
    except ArchiverError as e:
        log.error("%s; the checkpoint (seq %d) is only in the archive", e, mark.seq)
