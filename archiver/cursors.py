"""Cursors are not taken on trust: whether a job is still where the archive saw it, and where a
walk resumes when the job it was to resume after has gone from the listing or moved in it.

A cursor the API refuses (400, or 404 on the list path), or answers with what cannot follow it
(jobs newer than it; an empty or short last page while the archive holds older jobs), is checked
with the job's GET. Only a cursor whose job is still there, created when the archive says, can
prove that the route refuses to page; any other resumes the walk after the nearest archived job
listed before it that is still in place, or from the head.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from archiver import ledger, normalize
from archiver.client import fetch_job
from archiver.errors import ApiError

if TYPE_CHECKING:
    from archiver.walks import Run, Walk

log = logging.getLogger(__name__)

CANDIDATES = 3  # archived jobs tried as the new resume point before the head
MAX_RESUMES = 10  # a walk resumed this often is in a listing that will not hold still


def in_place(run: Run, job_id: str, created: int | None, fresh: bool = False) -> bool | None:
    """True: its GET shows the job created when the archive says; False: it is gone (404) or has
    moved; None: the GET failed. Each job is asked once a run, unless `fresh` (before blocking a
    route on it: the answer must be of now)."""
    if job_id in run.verified and not fresh:
        return run.verified[job_id]
    try:
        job, _ = fetch_job(run.api, job_id)
    except ApiError as e:
        log.info("could not check job %s: %s", job_id, e)
        verdict = None
    else:
        if job is None:
            verdict = False  # one 404 marks nothing vanished: a full walk, or its refresh, will tell
        else:
            now = normalize.job(job, run.notes, run.provider)["created_at"]
            verdict = created is None or now == created
    run.verified[job_id] = verdict
    return verdict


def resume_elsewhere(run: Run, w: Walk, cursor: str | None, why: str) -> None:
    """The walk's cursor cannot be trusted (`why`): resume after the nearest archived job listed
    before it that is still in place, or from the head. The gaps the walk holds stay held."""
    w.resumed += 1
    if w.resumed > MAX_RESUMES:
        raise ApiError(f"the listing changed under the walk {MAX_RESUMES} times; try again later")
    created = w.cursor_created
    with run.engine.connect() as conn:
        if cursor is not None and created is None:
            created = ledger.created_at(conn, cursor)
        candidates = ledger.listed_before(conn, created, CANDIDATES, run.route) if created is not None else []
    for job_id, when in candidates:
        if in_place(run, job_id, when):
            log.warning("%s; resuming the walk after job %s", why, job_id)
            w.after, w.cursor_created, w.last_created = job_id, when, None
            return
    log.warning("%s; resuming the walk from the head", why)
    w.after, w.cursor_created, w.last_created, w.started_at_head = None, None, None, True


def follows(run: Run, w: Walk, created: list[int | None], ends: bool) -> bool:
    """Whether a page asked for after the walk's cursor can be its continuation, without asking:
    it lists a job, the first not newer than the cursor (a job out of order further down is the
    walk's to see), and if it ends the listing, the archive holds no job older than those it lists.
    (A listing never ends with an empty page after a cursor unless the cursor is unknown, or the
    jobs after it went between two requests: either way, worth one GET.)"""
    if ends and not created:
        return False  # has_more said jobs follow the cursor, or it is a stored one: check it
    if w.cursor_created is None:
        return True
    if created[0] is not None and created[0] > w.cursor_created:
        return False
    known = [c for c in created if c is not None]
    if not ends:
        return True
    with run.engine.connect() as conn:
        return not ledger.listed_older_than(conn, min(known, default=w.cursor_created), run.route)
