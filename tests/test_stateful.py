"""A Hypothesis state machine: jobs appear, move on, syncs run in both modes and get cut off.

Invariant: after every sync that completes, the archive equals the source, table by table.
"""

import random

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from archiver.errors import ApiError
from archiver.models import CHILD_TABLES, job_history, jobs, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import assert_archive_equals
from tests.fake_api import FakeApi, add_new_jobs, finish_job
from tests.test_sync import api_for

NEXT = {"validating_files": "queued", "queued": "running", "running": "paused", "paused": "running"}


def empty_archive(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (*CHILD_TABLES, job_history, jobs, sync_gaps, sync_runs):
            conn.execute(table.delete())


@pytest.mark.parametrize("examples", [120])
def test_archive_equals_source_after_every_completed_sync(engine: sa.Engine, examples: int) -> None:
    if engine.dialect.name == "postgresql":
        examples //= 3  # each example costs a few round trips more on a server

    class Archive(RuleBasedStateMachine):
        @initialize(seed=st.integers(0, 2**32), n=st.integers(0, 120))
        def start(self, seed: int, n: int) -> None:
            empty_archive(engine)
            self.rng = random.Random(seed)
            self.fake = FakeApi([])
            add_new_jobs(self.fake.jobs, n, self.rng)

        @rule(n=st.integers(1, 40))
        def jobs_appear(self, n: int) -> None:
            add_new_jobs(self.fake.jobs, n, self.rng)

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

        @rule(full=st.booleans(), limit=st.sampled_from([7, 20, 50]))
        def sync_completes(self, full: bool, limit: int) -> None:
            sync(api_for(self.fake), engine, full=full, limit=limit)
            assert_archive_equals(engine, self.fake.jobs)

        @rule(pages=st.integers(0, 4), limit=st.sampled_from([7, 20]))
        def sync_cut_off(self, pages: int, limit: int) -> None:
            self.fake.outage_after = self.fake.pages_served + pages
            try:
                sync(api_for(self.fake, max_retries=0), engine, limit=limit)
            except ApiError:
                pass
            finally:
                self.fake.outage_after = None

    run_state_machine_as_test(
        Archive,
        settings=settings(
            max_examples=examples,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
