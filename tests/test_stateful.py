"""A Hypothesis state machine of what cron really does: jobs appear (some already final, some in
the same second as the newest, one stamped out of order), move on, vanish, are re-stamped and
arrive wrongly typed; syncs of every kind run (full ones in parallel segments too), or get cut off
at any page. The server has personalities: an unknown cursor is answered with 400, 404, an empty
last page or the first page again; single-job GETs fail now and then (404 once, 500s).

Invariant, after every sync that completes with every in-flight job refreshed (what exits 0):
the archive equals the API, table by table, plus the jobs the API no longer lists, which stay
archived; no listed job is marked vanished; no gap is left open; after a full walk every archived
job that is no longer listed is marked; every listed final job has its details, its events and
checkpoints equal to what the API serves. A run that could not refresh some jobs (exit 5) leaves
only those as they were.

    ARCHIVER_STATEFUL_EXAMPLES=2000 pytest tests/test_stateful.py   # the long run, by hand
"""

import itertools
import json
import os
import random
from collections import deque
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from archiver.canonical import canonical_json
from archiver.detail_models import (
    DETAIL_TABLES,
    file_contents,
    files,
    job_checkpoints,
    job_details,
    job_events,
)
from archiver.details import DetailOptions
from archiver.errors import ApiError
from archiver.fake_details import add_details
from archiver.models import CHILD_TABLES, job_history, jobs, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import HISTORY_JSON, expected_archive, read_archive
from tests.details_oracle import FINAL, final_jobs
from tests.fake_api import FakeApi, add_new_jobs, error_reply, finish_job
from tests.test_sync import api_for

NEXT = {"validating_files": "queued", "queued": "running", "running": "paused", "paused": "running"}
EXAMPLES = int(os.environ.get("ARCHIVER_STATEFUL_EXAMPLES", "60"))
ODD_STATUSES: list[Any] = [["succeeded"], {"state": "failed"}, 7]
ODD_FIELDS: list[dict[str, Any]] = [
    {"method": {"type": "supervised", "supervised": ["x"]}},
    {"hyperparameters": [3, "auto"]},
    {"created_at": "yesterday"},
    {"integrations": {"type": "wandb"}},
    {"error": "boom"},
    {"result_files": "file-x"},
]


def empty_archive(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (*DETAIL_TABLES, job_details, files, file_contents, *CHILD_TABLES, job_history, jobs):
            conn.execute(table.delete())
        for table in (sync_gaps, sync_runs):
            conn.execute(table.delete())


def vanished_marks(engine: sa.Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(jobs.c.id, jobs.c.vanished_at.is_not(None))).all())


@pytest.mark.timeout(3600)
def test_archive_equals_source_after_every_completed_sync(engine: sa.Engine) -> None:
    examples = EXAMPLES // 3 if engine.dialect.name == "postgresql" else EXAMPLES  # a server costs more

    class Archive(RuleBasedStateMachine):
        @initialize(seed=st.integers(0, 2**32), n=st.integers(0, 120))
        def start(self, seed: int, n: int) -> None:
            empty_archive(engine)
            self.rng = random.Random(seed)
            self.fake = FakeApi([])
            self.gone: set[str] = set()  # removed from the API
            self.tie_ids = 0
            add_new_jobs(self.fake.jobs, n, self.rng)

        @rule(n=st.integers(1, 40))
        def jobs_appear(self, n: int) -> None:
            add_new_jobs(self.fake.jobs, n, self.rng)

        @rule(n=st.integers(1, 20))
        def final_jobs_appear(self, n: int) -> None:
            add_new_jobs(self.fake.jobs, n, self.rng)
            for job in self.fake.jobs[:n]:
                finish_job(job, self.rng.choice(["succeeded", "failed", "cancelled"]))

        @rule(data=st.data())
        def jobs_move_on(self, data: st.DataObject) -> None:
            moving = [j for j in self.fake.jobs if j["status"] in NEXT]
            for job in (
                data.draw(st.lists(st.sampled_from(moving), max_size=5, unique_by=id)) if moving else []
            ):
                if data.draw(st.booleans()):
                    finish_job(job, data.draw(st.sampled_from(["succeeded", "failed", "cancelled"])))
                else:
                    job["status"] = NEXT[job["status"]]

        @rule(data=st.data())
        def jobs_vanish(self, data: st.DataObject) -> None:
            if self.fake.jobs:
                at = data.draw(st.integers(0, len(self.fake.jobs) - 1))
                self.gone.add(self.fake.jobs.pop(at)["id"])

        @rule(data=st.data())
        def a_changing_job_is_sent_wrongly_typed(self, data: st.DataObject) -> None:
            """The API sends what changes (new and in-flight jobs); a final job deep in the history
            that changes is seen by a --full walk only, which the README says."""
            moving = [j for j in self.fake.jobs if j["status"] in NEXT]
            if moving:
                job = data.draw(st.sampled_from(moving))
                self.fake.odd[job["id"]] = data.draw(st.sampled_from(ODD_FIELDS))

        @rule(data=st.data())
        def a_job_ends_with_a_status_that_is_not_text(self, data: st.DataObject) -> None:
            moving = [j for j in self.fake.jobs if j["status"] in NEXT]
            if moving:
                job = data.draw(st.sampled_from(moving))
                finish_job(job, data.draw(st.sampled_from(["succeeded", "failed", "cancelled"])))
                self.fake.odd[job["id"]] = {"status": data.draw(st.sampled_from(ODD_STATUSES))}

        @rule(personality=st.sampled_from(["400", "404", "empty", "first"]))
        def the_server_answers_unknown_cursors_another_way(self, personality: str) -> None:
            self.fake.unknown_cursor = personality

        @rule(n=st.integers(1, 25), after=st.booleans())
        def jobs_appear_in_the_same_second_as_the_newest(self, n: int, after: bool) -> None:
            """Listed before or after the newest job: both tie orders exist in the wild."""
            if not self.fake.jobs:
                return
            second = self.fake.jobs[0]["created_at"]
            group = next((i for i, j in enumerate(self.fake.jobs) if j["created_at"] != second), None)
            ties: list[dict[str, Any]] = []
            add_new_jobs(ties, n, self.rng)
            for job in ties:  # ids in the order an API sorts a second's jobs: ascending, or descending
                self.tie_ids += 1
                job.update(created_at=second, id=f"ftjob-tie{self.tie_ids:06d}")
            if not after:
                ties.reverse()
            at = (len(self.fake.jobs) if group is None else group) if after else 0
            self.fake.jobs[at:at] = ties  # after every job of that second, or before them

        @rule(n=st.integers(2, 30), data=st.data())
        def new_jobs_arrive_with_one_stamped_out_of_order(self, n: int, data: st.DataObject) -> None:
            add_new_jobs(self.fake.jobs, n, self.rng)
            oldest = min(j["created_at"] for j in self.fake.jobs)
            self.fake.jobs[data.draw(st.integers(0, n - 1))]["created_at"] = oldest - 1

        @rule(data=st.data())
        def an_in_flight_job_is_re_stamped(self, data: st.DataObject) -> None:
            """Its created_at changes, so it moves in the listing (its GET shows the new one)."""
            moving = [i for i, j in enumerate(self.fake.jobs) if j["status"] in NEXT]
            if not moving:
                return
            job = self.fake.jobs.pop(data.draw(st.sampled_from(moving)))
            at = data.draw(st.integers(0, len(self.fake.jobs)))
            if at < len(self.fake.jobs):  # in the same second as the job it is now listed before
                job["created_at"] = self.fake.jobs[at]["created_at"]
            elif self.fake.jobs:  # the oldest
                job["created_at"] = self.fake.jobs[-1]["created_at"] - 1
            self.fake.jobs.insert(at, job)

        @rule(data=st.data(), failures=st.integers(1, 14), kind=st.sampled_from([404, 500]))
        def a_single_job_get_fails(self, data: st.DataObject, failures: int, kind: int) -> None:
            if self.fake.jobs:
                job = data.draw(st.sampled_from(self.fake.jobs))
                reply = error_reply(kind, "No such job" if kind == 404 else "Something went wrong")
                self.fake.get_faults[job["id"]] = deque([reply] * (1 if kind == 404 else failures))

        @rule(data=st.data())
        def the_gateway_writes_single_job_gets_again(self, data: st.DataObject) -> None:
            """As the real gateway does: a GET's numbers as JavaScript writes them (2.0 is 2, 1e-05
            is 0.00001), where the list passes the provider's text through."""
            self.fake.retrieved = canonical_json
            for job in self.fake.jobs[:40]:
                if job["status"] in NEXT and data.draw(st.booleans()):
                    job["hyperparameters"] = {"n_epochs": 3, "learning_rate_multiplier": 2.0, "lr": 1e-05}

        def serve_details(self) -> None:
            """A job's details exist upstream from the moment it is final."""
            final = {j["id"] for j in final_jobs(self.fake)} - self.fake.events.keys()
            add_details(self.fake, seed=self.rng.randrange(2**32), only=final)

        @rule(full=st.booleans(), limit=st.sampled_from([7, 20, 50]), parallel=st.sampled_from([1, 2, 4]))
        def sync_completes(self, full: bool, limit: int, parallel: int) -> None:
            self.serve_details()
            with engine.begin() as conn:  # time enough passes for the back-off of failed details
                conn.execute(
                    sa.update(job_details).where(job_details.c.state == "retry").values(next_try_at=0)
                )
            result = sync(
                api_for(self.fake), engine, full=full, limit=limit, parallel=parallel, details=DetailOptions()
            )
            self.check(full and not result.unrefreshed, set(result.unrefreshed))
            self.check_details()

        @rule(
            pages=st.integers(0, 6),
            full=st.booleans(),
            limit=st.sampled_from([7, 20]),
            parallel=st.sampled_from([1, 2, 4]),
        )
        def sync_cut_off(self, pages: int, full: bool, limit: int, parallel: int) -> None:
            self.fake.outage_after = self.fake.pages_served + pages
            self.serve_details()
            try:
                api = api_for(self.fake, max_retries=0)
                sync(api, engine, full=full, limit=limit, parallel=parallel, details=DetailOptions())
            except ApiError:
                pass
            finally:
                self.fake.outage_after = None

        def check(self, full: bool, stale: set[str]) -> None:
            listed = {j["id"] for j in self.fake.jobs}
            actual = read_archive(engine)
            key = 0  # every table's first column is the job id
            kept = {t: [r for r in rows if r[key] in listed - stale] for t, rows in actual.items()}
            served = [self.fake.served(j) for j in self.fake.jobs if j["id"] not in stale]
            assert kept == expected_archive(served), "the archive differs from the API"
            if not stale:
                with engine.connect() as conn:
                    assert not conn.execute(sa.select(sync_gaps.c.id)).all(), "a gap was left open"
            with engine.connect() as conn:
                h = job_history.c
                versions = conn.execute(sa.select(h.job_id, HISTORY_JSON).order_by(h.job_id, h.id))
                rows = [(a, json.loads(text)) for a, text in versions]
            for (a, before), (b, after) in itertools.pairwise(rows):
                assert a != b or canonical_json(before) != canonical_json(after), (
                    f"{b}: a history row, no change"
                )
            assert {r[key] for r in actual["jobs"]} - listed <= self.gone  # nothing invented
            marks = vanished_marks(engine)
            assert not [i for i in listed if marks.get(i)], "a listed job is marked vanished"
            if full:
                assert all(marks[i] for i in marks.keys() - listed), "a full walk missed a vanished job"

        def check_details(self) -> None:
            listed = {j["id"] for j in self.fake.jobs}
            with engine.connect() as conn:
                final = (
                    set(conn.execute(sa.select(jobs.c.id).where(jobs.c.status_class.in_(FINAL))).scalars())
                    & listed
                )
                states = dict(conn.execute(sa.select(job_details.c.job_id, job_details.c.state)).all())
                events = conn.execute(sa.select(job_events.c.job_id, job_events.c.raw)).all()
                checkpoints = conn.execute(sa.select(job_checkpoints.c.job_id, job_checkpoints.c.raw)).all()
            assert {i: states.get(i) for i in final} == dict.fromkeys(final, "done"), (
                "a final job lacks details"
            )
            for table, rows in (("events", events), ("checkpoints", checkpoints)):
                served = getattr(self.fake, table)
                got = sorted((i, r["id"]) for i, r in rows if i in final)
                assert got == sorted((i, e["id"]) for i in final for e in served.get(i, [])), table

    run_state_machine_as_test(
        Archive,
        settings=settings(
            max_examples=examples,
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
