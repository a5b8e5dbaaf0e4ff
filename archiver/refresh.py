"""In-flight jobs seen again by GET: the stop rule's last step, when paging on would cost more.

Each batch of GETs commits on its own. A job whose GET fails is left as it was and tried again by
later runs, after 1, 2, 4, ... minutes (at most a day); the run goes on. A 404 is believed only
when confirmed: by a 404 in an earlier run, or because the walk passed the job's place in the
listing without seeing it; until then the job is kept in flight and asked again next run.
"""

import logging
import math
import time

from archiver import interrupts, ledger
from archiver.client import Page, fetch_job
from archiver.errors import ApiError, OutOfTime
from archiver.store import JSONObj
from archiver.walks import Run, Walk, write

log = logging.getLogger(__name__)

BATCH = 20  # GETs committed together
GIVE_UP_AFTER = 3  # GETs failed in a row: the API is failing, the rest wait for the next run


def settle(run: Run, here: int | None, may_page: bool, walked_all: bool = False) -> bool:
    """True when every in-flight job due a refresh has been seen again, fetching them one by one
    when that is cheaper than paging on (or when paging on is not possible). `here`: the
    created_at of the last job the head walk listed; `walked_all`: it listed the whole listing."""
    if not run.pending:
        return True
    ahead = {i: c for i, c in run.pending.items() if c is not None and here is not None and c <= here}
    if may_page and ahead and not run.blocked:
        with run.engine.connect() as conn:
            pages_left = math.ceil(
                ledger.count_created_between(conn, min(ahead.values()), here or 0, run.route) / run.limit
            )
        if len(ahead) > pages_left:
            return False  # paging on reaches them sooner (the rest, passed unseen, need a GET anyway)
    ids = list(run.pending)
    log.info("fetching %d in-flight jobs one by one", len(ids))
    in_a_row, provider = 0, None
    for start in range(0, len(ids), BATCH):
        found, gone, failed = [], [], {}
        for job_id in ids[start : start + BATCH]:
            if in_a_row >= GIVE_UP_AFTER:
                run.unrefreshed.setdefault(job_id, "not asked: the GETs before it failed")
                continue
            try:
                job, answered = fetch_job(run.api, job_id)
            except OutOfTime:
                raise
            except ApiError as e:
                if run.api.stopping.is_set():
                    raise
                failed[job_id], in_a_row = str(e), in_a_row + 1
                continue
            in_a_row = 0
            if job is None:
                gone.append(job_id)
            else:
                found.append(job)
                provider = provider or answered
        passed = [i for i in gone if walked_all or i in run.suspects or passed_by(run.pending.get(i), here)]
        if not walked_all:  # its place is where the archive saw it, which may have moved: ask again
            back, again = ask_again(run, [i for i in passed if i not in run.suspects])
            found += back
            gone = [i for i in gone if i not in {job["id"] for job in back}]
            passed = [i for i in passed if i in run.suspects or i in again]
        write(run, Walk("get", None, []), Page(found, False, None, provider))  # hashed as a page's
        record(run, passed, [i for i in gone if i not in passed], failed)
    run.pending.clear()
    if run.unrefreshed:
        some = next(iter(run.unrefreshed.items()))
        log.warning(
            "%d in-flight jobs could not be refreshed (kept as they were, tried again later), "
            "job %s first: %s",
            len(run.unrefreshed),
            *some,
        )
    return True


def ask_again(run: Run, ids: list[str]) -> tuple[list[JSONObj], list[str]]:
    """A second GET of jobs that answered 404 once (a 404 may be a server's hiccup): the jobs it
    finds, and the ids that answer 404 again. One whose GET fails now is neither."""
    found, gone = [], []
    for job_id in ids:
        try:
            job, _ = fetch_job(run.api, job_id)
        except OutOfTime:
            raise
        except ApiError:
            continue
        if job is None:
            gone.append(job_id)
        else:
            found.append(job)
    return found, gone


def passed_by(created: int | None, here: int | None) -> bool:
    """Whether a head walk that listed down to `here` has passed the job's place."""
    return created is not None and here is not None and created > here


def record(run: Run, vanished: list[str], missing: list[str], failed: dict[str, str]) -> None:
    if not (vanished or missing or failed):
        return
    now = time.time()
    with interrupts.deferred(), run.engine.begin() as conn:
        marked = ledger.let_go(conn, vanished, run.route, now)
        ledger.record_missing(conn, missing, run.refresh_rows, now)
        ledger.record_failures(conn, failed, run.refresh_rows, now)
    run.unrefreshed.update(failed)
    run.unrefreshed.update(
        dict.fromkeys(missing, "answered 404 once: asked again next run before marked vanished")
    )
    for job_id in vanished + missing:
        run.pending.pop(job_id, None)
    run.result.vanished += marked
    if vanished:
        log.info("%d jobs are gone from the API (404, confirmed); kept and marked vanished", len(vanished))
    if missing:
        log.info("%d in-flight jobs answered 404; asked again next run before marked vanished", len(missing))
