"""One sync run: walk the API's pages newest first, one transaction per page, and know when to stop.

Incremental runs stop early: once a page holds only archived, unchanged, terminal jobs, and every
job the archive holds in flight has been seen again (walked past, or fetched one by one when that
is cheaper). Until one walk has reached the end of the history, runs keep walking to the end; an
interrupted walk resumes from its checkpoint, the cursor committed with its last page.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from archiver.client import Api, Page, fetch_job, iter_pages
from archiver.db import database_error
from archiver.errors import ApiError, ArchiverError, Interrupted
from archiver.store import (
    JSONObj,
    PageCounts,
    State,
    count_created_between,
    in_flight,
    load_state,
    quarantine,
    save_run,
    save_state,
    split_items,
    start_run,
    upsert_page,
)

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    run_id: int
    mode: str
    pages: int = 0
    requests: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def counters(self) -> dict[str, int]:
        return {
            "pages": self.pages,
            "requests": self.requests,
            "jobs_seen": self.seen,
            "jobs_inserted": self.inserted,
            "jobs_updated": self.updated,
            "jobs_unchanged": self.unchanged,
            "jobs_rejected": self.rejected,
        }

    def add(self, counts: PageCounts, seen: int) -> None:
        self.seen += seen
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged


@dataclass
class Run:
    """What one run needs while it walks."""

    api: Api
    engine: Engine
    result: SyncResult
    limit: int
    on_page: Callable[[SyncResult], None] | None
    pending: dict[str, int | None]  # in-flight jobs not yet seen again: id -> created_at
    state: State  # as committed
    order_ok: bool = True
    passed_checkpoint: bool = False  # the head walk went past the unfinished walk's checkpoint

    def write(self, page: Page, mark_new: bool = False, **state: object) -> PageCounts:
        """One transaction: the jobs, the rejected items, the checkpoint (if any) and the run's counters.

        With `mark_new`, a page that brought new jobs becomes the checkpoint: the jobs after it
        may be missing until a walk gets past them (a head walk cut off before its stop page).
        """
        now = time.time()
        jobs, bad = split_items(page.items)
        with self.engine.begin() as conn:
            counts = upsert_page(conn, jobs, self.result.run_id, now)
            if mark_new and counts.inserted and page.has_more:
                state = {**state, "resume_after": page.last_id}
            if bad:
                log.warning(
                    "%d items of the page after %s are not jobs; kept in rejected_items", len(bad), page.after
                )
                quarantine(conn, bad, self.result.run_id, page.after, now)
                counts.quiet = False
            self.result.add(counts, len(jobs))
            self.result.rejected += len(bad)
            self.result.requests = self.api.requests
            self.save_state(conn, now, state)
            save_run(conn, self.result.run_id, **self.result.counters())
        for job in jobs:
            self.pending.pop(job["id"], None)
        return counts

    def save_state(self, conn: Connection, now: float, state: dict[str, object]) -> None:
        if any(getattr(self.state, k) != v for k, v in state.items()):
            save_state(conn, now, **state)
            self.state = replace(self.state, **state)  # type: ignore[arg-type]


def sync(
    api: Api,
    engine: Engine,
    *,
    full: bool = False,
    limit: int = 100,
    on_page: Callable[[SyncResult], None] | None = None,
) -> SyncResult:
    """Archive the job list; the run is recorded in sync_runs whatever happens."""
    mode = "full" if full else "incremental"
    with engine.begin() as conn:
        run_id = start_run(conn, mode, str(api.http.base_url), time.time())
        state, pending = load_state(conn), in_flight(conn)
    run = Run(api, engine, SyncResult(run_id=run_id, mode=mode), limit, on_page, pending, state)
    try:
        if full or (not state.history_complete and not state.resume_after):
            walk(run, after=None, stop_early=False, checkpoint=not state.history_complete)
        elif (
            not walk(run, after=None, stop_early=True, checkpoint=False, then=state.resume_after)
            and state.resume_after
            and not run.passed_checkpoint
        ):
            resume(run, state.resume_after)
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
    finish(run, "succeeded")
    return run.result


def resume(run: Run, after: str) -> None:
    """Carry on from the checkpoint: to the end while the history is incomplete, else to a stop page."""
    log.info("resuming the unfinished walk after %s", after)
    pages = run.result.pages
    complete = run.state.history_complete
    try:
        walk(run, after=after, stop_early=complete, checkpoint=not complete)
    except ApiError as e:
        if e.status != 400 or run.result.pages != pages:  # only the checkpoint itself may be refused
            raise
        log.warning("the API rejected the checkpoint %s (%s); walking the whole history instead", after, e)
        walk(run, after=None, stop_early=False, checkpoint=True)


def walk(run: Run, *, after: str | None, stop_early: bool, checkpoint: bool, then: str | None = None) -> bool:
    """Walk from `after`; returns True when it reached the end of the history.

    `checkpoint`: every page moves the checkpoint (a walk to the end). A walk that may stop early
    moves it only past pages that brought new jobs, until its stop page; there the gap it could
    have opened is closed, and it leaves `then` (the checkpoint of an older unfinished walk, still
    to be resumed) unless it went past it.
    """
    newest_allowed: int | None = None
    quiet = False
    for page in iter_pages(run.api, run.limit, after, prefetch=not stop_early):
        jobs = [item for item in page.items if isinstance(item, dict)]
        newest_allowed = check_order(run, jobs, newest_allowed)
        at_checkpoint = then is not None and any(job.get("id") == then for job in jobs)
        if at_checkpoint:  # the jobs after this page may be missing: walk on into them
            run.passed_checkpoint = True
            if not run.state.history_complete:  # the first walk never finished: finish it now
                stop_early, checkpoint = False, True
        if not page.has_more:
            state: dict[str, object] = {"history_complete": True, "resume_after": None}
        elif checkpoint:
            state = {"resume_after": page.last_id}
        else:
            state = {}
        counts = run.write(page, mark_new=stop_early and not quiet, **state)
        run.result.pages += 1
        if run.on_page:
            run.on_page(run.result)
        if not page.has_more:
            return True
        quiet = (quiet or counts.quiet) and not at_checkpoint
        if stop_early and run.order_ok and quiet and settle_stragglers(run, jobs):
            leave = None if run.passed_checkpoint else then
            if run.state.resume_after != leave:
                with run.engine.begin() as conn:
                    run.save_state(conn, time.time(), {"resume_after": leave})
            return False
    return True


def check_order(run: Run, jobs: list[JSONObj], newest_allowed: int | None) -> int | None:
    """The stop rule trusts newest-first order; if created_at ever increases, walk to the end."""
    for job in jobs:
        created = job.get("created_at")
        if not isinstance(created, int):
            continue
        if newest_allowed is not None and created > newest_allowed and run.order_ok:
            run.order_ok = False
            log.warning("the API does not list jobs newest first; walking the whole history this run")
        newest_allowed = created
    return newest_allowed


def settle_stragglers(run: Run, jobs: list[JSONObj]) -> bool:
    """True when every in-flight job has been seen again, fetching them one by one if that is cheaper."""
    if not run.pending:
        return True
    created = [c for c in run.pending.values() if c is not None]
    here = jobs[-1].get("created_at") if jobs else None
    pages_left: float = math.inf  # unknown depth: fetching is the bounded way
    if created and isinstance(here, int):
        with run.engine.connect() as conn:
            pages_left = math.ceil(count_created_between(conn, min(created), here) / run.limit)
    if len(run.pending) > pages_left:
        return False  # paging on reaches them sooner
    log.info("fetching %d in-flight jobs one by one", len(run.pending))
    fetched = [fetch_job(run.api, job_id) for job_id in list(run.pending)]
    run.write(Page(items=fetched, has_more=False, after=None))
    return True


def finish(run: Run, status: str, error: str | None = None) -> None:
    result = run.result
    result.requests = run.api.requests
    values = {"status": status, "error": error, "finished_at": time.time(), **result.counters()}
    try:
        with run.engine.begin() as conn:
            save_run(conn, result.run_id, **values)
    except DBAPIError as e:  # the archive itself may be what failed; the original error matters more
        log.warning("could not record the run's end: %s", database_error(e))
