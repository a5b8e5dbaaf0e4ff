"""A job's whole record: once a job is final, its events, checkpoints, files and result metrics, once.

State. `job_details` holds a row per final job once its details were tried: `done` (archived;
`error` says what the API could not give, e.g. a file gone upstream), `retry` (a failure worth
trying again, with back-off: `next_try_at`), or `unsupported` (the job's route cannot give
details through the gateway: why). A final job without a row is still to be fetched. So a run
asks one indexed query for its work, and a cron run with nothing new sends no request for details.

Events of jobs still in flight are not fetched: they are fetched, all of them, once the job is
final, which keeps each run's cost to the jobs that became final since (and the backlog).

A run fetches with a few threads (`concurrency`), each a whole job at a time; one writer (the
caller's thread) commits each job in its own transaction. Cut off at any moment, the jobs
committed stay; those in flight are fetched again by the next run, and nothing is written twice.
A 429 holds back every thread for the wait it asked (client.retrying).
"""

import logging
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, inspect, or_, select

from archiver import detail_api as http
from archiver import detail_store as ds
from archiver import interrupts, ledger
from archiver.client import Api
from archiver.detail_models import job_details
from archiver.detail_store import Fetched
from archiver.errors import ApiError, ArchiverError, TryLater
from archiver.models import jobs, result_files
from archiver.store import chunks

log = logging.getLogger(__name__)

FINAL = ("succeeded", "failed", "cancelled")
WAIT_STEP = 0.1  # seconds: how soon a signal is acted on while the threads fetch
MAX_BYTES = 50_000_000  # the largest result file kept, by default
CONCURRENCY = 4

# Routes the gateway (1.15.2) cannot reach details through; the reasons are in the README.
UNSUPPORTED = {
    "bedrock": "the gateway cannot reach Bedrock's events or checkpoints (it takes the path for the job "
    "id) and drops a CSV's lines; the metrics stay in the job's S3 output location",
    "vertex-ai": "the gateway cannot reach Vertex AI's events or checkpoints (it takes the path for the "
    "job id); the metrics stay in the Vertex AI Experiment",
    "fireworks-ai": "the gateway has no route to Fireworks' files, events or checkpoints, and Fireworks "
    "has no metrics API",
}


@dataclass(frozen=True)
class DetailOptions:
    """How a run fetches details. `max_jobs`: at most this many jobs this run (None: all)."""

    enabled: bool = True
    concurrency: int = CONCURRENCY
    max_jobs: int | None = None
    max_bytes: int = MAX_BYTES
    route: str | None = None  # only the jobs this route lists (None: every job), fetched through it


DEFAULT_DETAILS = DetailOptions()


@dataclass
class DetailsResult:
    """What a run did for details: jobs archived, to be tried again, unsupported, left for later."""

    total: int = 0  # jobs that were due this run
    done: int = 0
    retry: int = 0
    unsupported: int = 0
    rejected: int = 0  # events, checkpoints and result rows that could not be read (kept raw)
    left: int = 0  # due but not reached this run (cut off, capped, or the API asked to wait)
    requests: int = 0  # sent for details, retries included
    stopped: str | None = None  # why the run stopped fetching details early


@dataclass(frozen=True)
class Due:
    job_id: str
    provider: str | None
    files: tuple[str, ...]  # training, validation and result files
    results: tuple[str, ...]
    attempts: int


def is_due(now: float, route: str | None = None) -> Any:
    """Final, listed jobs (of `route`, if given) whose details were never tried, or are due to be
    tried again."""
    d = job_details.c
    never_or_due = or_(d.job_id.is_(None), and_(d.state == "retry", d.next_try_at <= now))
    due = and_(jobs.c.status_class.in_(FINAL), jobs.c.vanished_at.is_(None), never_or_due)
    if route is None:
        return due
    return and_(due, ledger.on_route(route))


def count_due(conn: Connection, now: float, route: str | None = None) -> int:
    query = select(func.count()).select_from(jobs.outerjoin(job_details, job_details.c.job_id == jobs.c.id))
    return int(conn.execute(query.where(is_due(now, route))).scalar_one())


def due_jobs(conn: Connection, now: float, limit: int | None = None, route: str | None = None) -> list[Due]:
    """The jobs whose details are due (is_due), newest first, with the files they name."""
    d = job_details.c
    query = (
        select(jobs.c.id, jobs.c.provider, jobs.c.training_file, jobs.c.validation_file, d.attempts)
        .select_from(jobs.outerjoin(job_details, d.job_id == jobs.c.id))
        .where(is_due(now, route))
        .order_by(jobs.c.created_at.desc(), jobs.c.id)
    )
    rows = conn.execute(query if limit is None else query.limit(limit)).all()
    results: dict[str, list[str]] = {}
    for chunk in chunks([r.id for r in rows]):
        query = select(result_files.c.job_id, result_files.c.file_id).where(result_files.c.job_id.in_(chunk))
        for row in conn.execute(query.order_by(result_files.c.position)):
            if isinstance(row.file_id, str) and row.file_id:
                results.setdefault(row.job_id, []).append(row.file_id)
    due = []
    for r in rows:
        named = [f for f in (r.training_file, r.validation_file) if f] + results.get(r.id, [])
        files = tuple(dict.fromkeys(named))
        due.append(Due(r.id, r.provider, files, tuple(results.get(r.id, [])), r.attempts or 0))
    return due


class Claims:
    """File ids some thread fetches (or the archive holds): each file is fetched once per archive."""

    def __init__(self, meta: set[str], content: set[str]) -> None:
        self.taken = {"meta": meta, "content": content}
        self.lock = threading.Lock()

    def claim(self, kind: str, file_id: str) -> bool:
        with self.lock:
            if file_id in self.taken[kind]:
                return False
            self.taken[kind].add(file_id)
            return True

    def release(self, kind: str, file_id: str) -> None:
        with self.lock:
            self.taken[kind].discard(file_id)


def fetch_details(api: Api, job: Due, claims: Claims, max_bytes: int) -> Fetched:
    """Everything the API holds about one job; a failure worth retrying ends it with `error`."""
    f = Fetched(job.job_id)
    held: list[tuple[str, str]] = []
    try:
        events, checkpoints = http.events_path(job.job_id), http.checkpoints_path(job.job_id)
        f.events = part(f, "events", lambda: http.fetch_list(api, events, http.EVENTS_LIMIT))
        f.checkpoints = part(
            f, "checkpoints", lambda: http.fetch_list(api, checkpoints, http.CHECKPOINTS_LIMIT)
        )
        for file_id in job.files:
            if claims.claim("meta", file_id):
                held.append(("meta", file_id))
                f.files[file_id] = http.fetch_file(api, file_id)
        for file_id in job.results:
            if claims.claim("content", file_id):
                held.append(("content", file_id))
                f.contents[file_id] = http.fetch_content(api, file_id, max_bytes)
    except ArchiverError as e:
        f.error = str(e)
        for kind, file_id in held:
            if (file_id not in f.files) if kind == "meta" else (file_id not in f.contents):
                claims.release(kind, file_id)
        if isinstance(e, TryLater):
            raise Deferred(f) from None
    return f


class Deferred(Exception):
    """The API asked to wait longer than the cap: stop fetching details this run."""

    def __init__(self, fetched: Fetched) -> None:
        super().__init__(fetched.error)
        self.fetched = fetched


def part(f: Fetched, name: str, fetch: Callable[[], list[Any] | None]) -> list[Any] | None:
    """A list the route may refuse for good (404, 400, ...): noted as missing, not retried."""
    try:
        items = fetch()
    except ApiError as e:
        if e.status is None or e.status >= 500 or e.status in (401, 403, 408, 409, 429):
            raise
        f.missing.append(f"{name}: {e}")
        return None
    if items is None:
        f.missing.append(f"{name}: the API does not know the job (404)")
    return items


def archive_details(
    api: Api,
    engine: Engine,
    run_id: int,
    options: DetailOptions = DEFAULT_DETAILS,
    on_progress: Callable[[DetailsResult], None] | None = None,
) -> DetailsResult:
    """Fetch and commit the details of every final job that lacks them (see the module docstring)."""
    result = DetailsResult()
    if not options.enabled:
        return result
    now = time.time()
    with engine.connect() as conn:
        due = due_jobs(conn, now, options.max_jobs, options.route)
        capped = count_due(conn, now, options.route) if len(due) == options.max_jobs else len(due)
    result.total = len(due)
    if not due:
        return result
    capable = [job for job in due if job.provider not in UNSUPPORTED]
    mark_unsupported(engine, [job for job in due if job.provider in UNSUPPORTED], run_id, now, result)
    with engine.connect() as conn:
        claims = Claims(*ds.known_files(conn, sorted({f for job in capable for f in job.files})))
    log.info("fetching the details of %d jobs, %d at a time", len(capable), options.concurrency)
    stream = fetched(api, capable, claims, options, result)
    before = api.requests
    try:
        for f, attempts in stream:
            with interrupts.deferred(), engine.begin() as conn:
                result.rejected += ds.save_job(conn, f, run_id, attempts, options.max_bytes, time.time())
            result.requests = api.requests - before
            if f.error is None:
                result.done += 1
            else:
                result.retry += 1
                log.warning("details of job %s: %s; tried again in a later run", f.job_id, f.error)
            if on_progress:
                on_progress(result)
    finally:
        stream.close()  # cut off: the threads stop before their next request
        result.requests = api.requests - before
    result.left = capped - result.done - result.retry - result.unsupported
    return result


def fetched(
    api: Api, due: list[Due], claims: Claims, options: DetailOptions, result: DetailsResult
) -> Generator[tuple[Fetched, int], None, None]:
    """Each job's details as a thread has fetched them, at most `concurrency` jobs in flight and as
    many ready ahead. Closing (or a signal in the consumer) stops the threads before their next
    request; what they were fetching is dropped.

    A signal is acted on between the executor's calls, never inside one (interrupts.deferred):
    raised inside `wait()`, it could leave a future's lock held, and the thread finishing that
    future, then `shutdown`, would wait for it for ever. So `wait()` returns every WAIT_STEP."""
    pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="details")
    queue = iter(due)
    running: dict[Future[Fetched], Due] = {}

    def submit() -> None:
        for job in queue:
            running[pool.submit(fetch_details, api, job, claims, options.max_bytes)] = job
            if len(running) >= 2 * options.concurrency:
                return

    try:
        with interrupts.deferred():
            submit()
        while running:
            ready: set[Future[Fetched]] = set()
            while not ready:
                with interrupts.deferred():
                    ready, _ = wait(running, timeout=WAIT_STEP, return_when=FIRST_COMPLETED)
            for future in ready:
                job = running.pop(future)
                with interrupts.deferred():
                    try:
                        got, stop = future.result(), None
                    except Deferred as e:
                        got, stop = e.fetched, e
                if stop is not None:
                    result.stopped = str(stop)
                    log.warning("stopped fetching details this run: %s", stop)
                    queue = iter(())
                yield got, job.attempts
            with interrupts.deferred():
                submit()
    finally:
        with interrupts.deferred():
            if running:  # cut off: the threads send nothing more
                api.stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)


def mark_unsupported(engine: Engine, due: list[Due], run_id: int, now: float, result: DetailsResult) -> None:
    """Jobs of routes that cannot give details: recorded once with why, never asked again."""
    if not due:
        return
    with interrupts.deferred(), engine.begin() as conn:
        for job in due:
            row = {"job_id": job.job_id, "state": "unsupported", "attempts": 0, "next_try_at": None}
            row |= {"error": UNSUPPORTED[job.provider or ""], "fetched_at": now, "sync_run_id": run_id}
            ds.save_state(conn, row)
    result.unsupported += len(due)


def status_lines(conn: Connection) -> list[str]:
    """For `archiver status`: how many final jobs lack their details, and why."""
    if not inspect(conn).has_table("job_details"):  # not migrated yet: the next sync migrates it
        return []
    d = job_details.c
    final = and_(jobs.c.status_class.in_(FINAL), jobs.c.vanished_at.is_(None))
    lines = []
    never = select(func.count()).select_from(jobs.outerjoin(job_details, d.job_id == jobs.c.id))
    count = conn.execute(never.where(final, d.job_id.is_(None))).scalar_one()
    if count:
        lines.append(f"details: {count:,} final jobs not fetched yet (the next sync fetches them)")
    query = (
        select(d.state, d.error, func.count(), func.min(d.next_try_at))
        .where(d.state.in_(("retry", "unsupported")))
        .group_by(d.state, d.error)
        .order_by(func.count().desc(), d.error)
    )
    for state, error, n, next_try in conn.execute(query).all()[:5]:
        if state == "retry":
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(next_try))
            lines.append(f"details: {n:,} jobs failed, tried again from {when}: {error}")
        else:
            lines.append(f"details: {n:,} jobs have none through this route: {error}")
    return lines
