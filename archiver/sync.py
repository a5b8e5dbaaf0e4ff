"""One sync run: walk the API's pages and write each in its own transaction, logging the run."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver.client import Api, iter_pages
from archiver.db import database_error
from archiver.errors import ApiError, ArchiverError
from archiver.store import JSONObj, PageCounts, save_run, start_run, upsert_page

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
        }

    def add(self, counts: PageCounts, seen: int) -> None:
        self.pages += 1
        self.seen += seen
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged


def ensure_jobs(items: list[object], after: str | None) -> list[JSONObj]:
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise ApiError(f"item {i} of the page after {after!r} is not a job with an id")
    return items  # type: ignore[return-value]


def sync(
    api: Api,
    engine: Engine,
    *,
    mode: str = "full",
    limit: int = 100,
    on_page: Callable[[SyncResult], None] | None = None,
) -> SyncResult:
    """Archive every job the API lists; the run is recorded in sync_runs whatever happens."""
    with engine.begin() as conn:
        run_id = start_run(conn, mode, str(api.http.base_url), time.time())
    result = SyncResult(run_id=run_id, mode=mode)
    try:
        for page in iter_pages(api, limit):
            page_jobs = ensure_jobs(page.jobs, page.after)
            with engine.begin() as conn:
                counts = upsert_page(conn, page_jobs, run_id, time.time())
                result.add(counts, len(page_jobs))
                result.requests = api.requests
                save_run(conn, run_id, **result.counters())
            if on_page:
                on_page(result)
    except ArchiverError as e:
        finish(engine, result, api, "failed", str(e))
        raise
    except DBAPIError as e:
        error = database_error(e)
        finish(engine, result, api, "failed", str(error))
        raise error from None
    except KeyboardInterrupt:
        finish(engine, result, api, "interrupted", "interrupted by a signal")
        raise
    finish(engine, result, api, "succeeded")
    return result


def finish(engine: Engine, result: SyncResult, api: Api, status: str, error: str | None = None) -> None:
    result.requests = api.requests
    try:
        with engine.begin() as conn:
            save_run(
                conn, result.run_id, status=status, error=error, finished_at=time.time(), **result.counters()
            )
    except DBAPIError as e:  # the archive itself may be what failed; the original error matters more
        log.warning("could not record the run's end: %s", database_error(e))
