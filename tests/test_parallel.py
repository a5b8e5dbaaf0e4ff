"""`sync --full --parallel N`: segments of the history fetched at once, one writer (issue 13).

The promise: the archive, its history and its coverage are what a `--full --parallel 1` run
leaves, table by table, also when the listing changes under the run and when cursors are refused.
"""

import copy
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import db, ledger
from archiver.models import job_history, jobs, rejected_items, sync_gaps, sync_runs
from tests.conftest import HISTORY_JSON, cli_env, read_archive, run_cli
from tests.fake_api import FakeApi, Reply, add_new_jobs, error_reply, finish_job, make_jobs, serve

LIMIT = 20
Change = Callable[["Shifting", sa.Engine], None]


class Shifting(FakeApi):
    """A fake whose listing changes once, as the run's first list page is asked for. It answers one
    request at a time, so each page is a page of one listing whichever segment asks first."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        super().__init__(jobs)
        self.change: Callable[[], None] | None = None
        self.refuse_cursors = False  # every `after` gets 400, as Vertex AI's through the gateway
        self.ghosts: dict[str, int] = {}  # vanished id -> its created_at: `after` it still pages
        self.serial = threading.Lock()
        self.pause = 0.0  # before each answer, outside the one-at-a-time part
        self.in_flight = self.most_in_flight = 0

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.pause)
            with self.serial:
                if self.change and path.endswith("/fine_tuning/jobs"):
                    self.change, change = None, self.change
                    change()
                if self.refuse_cursors and "after" in params:
                    return error_reply(400, "Invalid page token")
                if params.get("after") in self.ghosts:  # where the job would be, by created_at
                    created = self.ghosts[params["after"]]
                    before = [j["id"] for j in self.jobs if j["created_at"] >= created]
                    params = {k: v for k, v in params.items() if k != "after"}
                    params |= {"after": before[-1]} if before else {}
                return super().respond(path, params, headers)
        finally:
            with self.lock:
                self.in_flight -= 1


def unported(rows: Any) -> list[tuple[Any, ...]]:
    return [
        tuple(re.sub(r"127\.0\.0\.1:\d+", "fake", v) if isinstance(v, str) else v for v in r) for r in rows
    ]


def nothing(fake: Shifting, engine: sa.Engine) -> None:
    pass


def jobs_come_go_and_move_on(fake: Shifting, engine: sa.Engine) -> None:
    """New jobs at the head; a segment's starting job and others vanish; jobs finish or change."""
    rng = random.Random(5)
    with engine.connect() as conn:
        cuts = [job_id for job_id, _ in ledger.spaced_jobs(conn, 4, LIMIT)]
    add_new_jobs(fake.jobs, 7, rng)
    gone = {cuts[1], *rng.sample([j["id"] for j in fake.jobs], 9)}
    fake.jobs = [j for j in fake.jobs if j["id"] not in gone]
    for job in rng.sample(fake.jobs, 40):
        if job["status"] in ("validating_files", "queued", "running"):
            finish_job(job, "succeeded")
        else:
            job["metadata"] = {"changed": "yes"}


def a_segment_start_vanishes_yet_pages_after_it(fake: Shifting, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        cut = ledger.spaced_jobs(conn, 4, LIMIT)[1]
    fake.jobs = [j for j in fake.jobs if j["id"] != cut[0]]
    fake.ghosts[cut[0]] = cut[1]


def items_that_are_not_jobs_and_a_job_out_of_order(fake: Shifting, engine: sa.Engine) -> None:
    """Non-job items (one right after a segment's start, one where a page ends), and a job listed
    out of created_at order inside a segment's part."""
    with engine.connect() as conn:
        cut = ledger.spaced_jobs(conn, 4, LIMIT)[0][0]
    at = next(i for i, j in enumerate(fake.jobs) if j["id"] == cut)
    fake.jobs[at + 1 : at + 1] = [None]
    fake.jobs[at + 60 : at + 60] = [{"object": "fine_tuning.job"}]
    fake.jobs[at + 100]["created_at"] = 0


def cursors_refused(fake: Shifting, engine: sa.Engine) -> None:
    fake.refuse_cursors = True


def snapshot(url: str) -> tuple[dict[str, Any], int]:
    """The archive, its history, rejected items and coverage, less what differs by nature (times,
    run ids, the fake's port in error texts)."""
    engine = db.make_engine(db.parse_url(url))
    with engine.connect() as conn:
        h, g, r, x, j = job_history.c, sync_gaps.c, sync_runs.c, rejected_items.c, jobs.c
        counters = (
            r.status,
            r.error,
            r.jobs_seen,
            r.jobs_inserted,
            r.jobs_updated,
            r.jobs_unchanged,
            r.jobs_rejected,
        )
        state = {
            **read_archive(engine),
            "history": conn.execute(
                sa.select(h.job_id, h.status, h.content_hash, HISTORY_JSON).order_by(h.job_id, h.id)
            ).all(),
            "vanished": conn.execute(
                sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None)).order_by(jobs.c.id)
            ).all(),
            "more of jobs": conn.execute(
                sa.select(j.id, j.content_hash, j.provider, j.status_class).order_by(j.id)
            ).all(),
            "rejected": sorted(map(tuple, conn.execute(sa.select(x.reason, x.raw)).all()), key=repr),
            "gaps": unported(
                conn.execute(
                    sa.select(
                        g.after_id, g.until_id, g.until_created_at, g.blocked_reason, g.blocked_at.is_(None)
                    ).order_by(g.id)
                ).all()
            ),
            "runs": unported(conn.execute(sa.select(*counters).order_by(r.id)).all()),
        }
        pages = conn.execute(sa.select(r.pages).order_by(r.id.desc()).limit(1)).scalar_one()
    engine.dispose()
    return state, pages


CHANGES = [
    nothing,
    jobs_come_go_and_move_on,
    a_segment_start_vanishes_yet_pages_after_it,
    items_that_are_not_jobs_and_a_job_out_of_order,
    cursors_refused,
]


@pytest.mark.parametrize("change", CHANGES)
def test_a_parallel_full_walk_leaves_what_a_sequential_one_leaves(
    db_url: str, other_db_url: str, change: Change
) -> None:
    history = make_jobs(1200, seed=7)  # 60 pages: 4 segments of 15
    for job in history[::3]:
        finish_job(job)
    states = []
    for url, parallel in ((db_url, "1"), (other_db_url, "4")):
        fake = Shifting(copy.deepcopy(history))
        with serve(fake) as base_url:
            env = cli_env(base_url, ARCHIVER_DATABASE_URL=url)
            # the job list's walk is what is compared: no details (tests/test_details*.py has them)
            first = run_cli("sync", f"--page-size={LIMIT}", "--no-details", env=env)
            assert first.returncode == 0, first.stderr
            engine = db.make_engine(db.parse_url(url))
            fake.change = lambda fake=fake, engine=engine: change(fake, engine)
            full = run_cli(
                "sync",
                "-v",
                "--full",
                "--no-details",
                f"--page-size={LIMIT}",
                f"--parallel={parallel}",
                env=env,
            )
            engine.dispose()
        rejected = change is items_that_are_not_jobs_and_a_job_out_of_order
        assert full.returncode == (3 if rejected else 0), full.stderr
        if parallel != "1" and change in (jobs_come_go_and_move_on, cursors_refused):  # handed over
            assert "the segment before walks on" in full.stderr
        states.append(snapshot(url))
    (sequential, one_walk_pages), (parallel_, pages) = states
    for name in sequential:
        assert parallel_[name] == sequential[name], f"{name} differs from a sequential --full"
    assert pages <= one_walk_pages + 3  # no segment walked beyond its part (a page each at most)
    if change is jobs_come_go_and_move_on:
        assert len(sequential["vanished"]) == 10


def test_a_parallel_full_walk_has_a_request_per_segment_in_flight_and_one_walk_has_one(
    tmp_path: Any,
) -> None:
    url = str(tmp_path / "a.db")
    fake = Shifting(make_jobs(400, seed=8))  # 20 pages: 4 segments of 5
    with serve(fake) as base_url:
        env = cli_env(base_url, ARCHIVER_DATABASE_URL=url)
        assert run_cli("sync", f"--page-size={LIMIT}", env=env).returncode == 0
        fake.pause, fake.most_in_flight = 0.2, 0
        assert run_cli("sync", "--full", f"--page-size={LIMIT}", "--parallel=1", env=env).returncode == 0
        one = fake.most_in_flight
        fake.most_in_flight = 0
        assert run_cli("sync", "--full", f"--page-size={LIMIT}", "--parallel=4", env=env).returncode == 0
    assert (one, fake.most_in_flight) == (1, 4)
