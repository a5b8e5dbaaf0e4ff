"""A Hypothesis state machine of two routes synced into one archive, interleaved: jobs appear in
either (some listed by both routes), move on, vanish; syncs of either route complete or are cut off
at any page, incremental or full.

    ARCHIVER_STATEFUL_EXAMPLES=2000 pytest tests/test_stateful_routes.py   # the long run, by hand

Invariant, per route, after each sync of that route that completes with every in-flight job
refreshed: the archive holds what the route lists, table by table; job_routes says the route lists
each of them; no gap of that route is left open, whatever the other route's cut-off runs left; no
job it lists is marked vanished, and after a full sync every job it no longer lists has left its
job_routes or is marked vanished; and a job listed by both routes has no history row that is no change.
"""

import itertools
import json
import os
import random

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from archiver.canonical import canonical_json
from archiver.errors import ApiError
from archiver.models import job_history, job_routes, jobs, sync_gaps
from archiver.sync import sync
from tests.conftest import HISTORY_JSON, expected_archive, read_archive
from tests.fake_api import FakeApi, add_new_jobs, finish_job
from tests.test_stateful import empty_archive
from tests.test_sync import api_for

EXAMPLES = int(os.environ.get("ARCHIVER_STATEFUL_EXAMPLES", "60")) // 2
ROUTES = ("openai", "team-b")
NEXT = {"validating_files": "queued", "queued": "running", "running": "succeeded"}


def test_each_route_equals_its_listing_after_its_completed_syncs_interleaved(engine: sa.Engine) -> None:
    examples = EXAMPLES // 3 if engine.dialect.name == "postgresql" else EXAMPLES

    class TwoRoutes(RuleBasedStateMachine):
        @initialize(seed=st.integers(0, 2**32), n=st.integers(0, 60), m=st.integers(0, 60))
        def start(self, seed: int, n: int, m: int) -> None:
            empty_archive(engine)
            self.rng = random.Random(seed)
            self.fakes = {name: FakeApi([]) for name in ROUTES}
            for fake, count in zip(self.fakes.values(), (n, m), strict=True):
                add_new_jobs(fake.jobs, count, self.rng)
            self.shared: set[str] = set()

        @rule(route=st.sampled_from(ROUTES), n=st.integers(1, 30))
        def jobs_appear(self, route: str, n: int) -> None:
            add_new_jobs(self.fakes[route].jobs, n, self.rng)

        @rule(n=st.integers(1, 10))
        def new_jobs_appear_in_both_routes(self, n: int) -> None:
            """Jobs both routes list (two keys of one organisation): at the head of both listings."""
            heads = [fake.jobs[0] for fake in self.fakes.values() if fake.jobs]
            new = [max(heads, key=lambda j: j["created_at"])] if heads else []
            add_new_jobs(new, n, self.rng)
            for fake in self.fakes.values():
                fake.jobs[:0] = new[:n]
            self.shared.update(j["id"] for j in new[:n])

        @rule(route=st.sampled_from(ROUTES), data=st.data())
        def jobs_move_on(self, route: str, data: st.DataObject) -> None:
            moving = [j for j in self.fakes[route].jobs if j["status"] in NEXT]
            for job in data.draw(st.lists(st.sampled_from(moving), unique_by=id)) if moving else []:
                if NEXT[job["status"]] == "succeeded":
                    finish_job(job)
                else:
                    job["status"] = NEXT[job["status"]]

        @rule(route=st.sampled_from(ROUTES), data=st.data())
        def jobs_vanish(self, route: str, data: st.DataObject) -> None:
            fake = self.fakes[route]
            listed = fake.jobs
            for job in (
                data.draw(st.lists(st.sampled_from(listed), max_size=3, unique_by=id)) if listed else []
            ):
                fake.jobs.remove(job)  # a job both routes list may go from one of them only

        @rule(route=st.sampled_from(ROUTES), full=st.booleans(), limit=st.sampled_from([7, 20]))
        def sync_completes(self, route: str, full: bool, limit: int) -> None:
            result = sync(api_for(self.fakes[route]), engine, full=full, limit=limit, route=route)
            self.check(route, set(result.unrefreshed), full)

        @rule(route=st.sampled_from(ROUTES), pages=st.integers(0, 4), full=st.booleans())
        def sync_cut_off(self, route: str, pages: int, full: bool) -> None:
            fake = self.fakes[route]
            fake.outage_after = fake.pages_served + pages
            try:
                sync(api_for(fake, max_retries=0), engine, full=full, limit=7, route=route)
            except ApiError:
                pass
            finally:
                fake.outage_after = None

        def check(self, route: str, stale: set[str], full: bool) -> None:
            fake = self.fakes[route]
            listed = {j["id"] for j in fake.jobs} - stale
            actual = read_archive(engine)
            kept = {t: [r for r in rows if r[0] in listed] for t, rows in actual.items()}
            assert kept == expected_archive([j for j in fake.jobs if j["id"] in listed]), route
            with engine.connect() as conn:
                r = job_routes.c
                routed = set(conn.execute(sa.select(r.job_id).where(r.route == route)).scalars())
                gaps = conn.execute(sa.select(sync_gaps.c.id).where(sync_gaps.c.route == route)).all()
                gone = set(
                    conn.execute(sa.select(jobs.c.id).where(jobs.c.vanished_at.is_not(None))).scalars()
                )
                h = job_history.c
                versions = conn.execute(sa.select(h.job_id, HISTORY_JSON).order_by(h.job_id, h.id))
                rows = [(a, json.loads(text)) for a, text in versions]
            assert listed <= routed, f"{route}: job_routes misses jobs it lists"
            assert stale or not gaps, f"{route}: a gap of the route was left open"
            assert not listed & gone, f"{route}: a job it lists is marked vanished"
            unlisted = routed - {j["id"] for j in fake.jobs}
            assert not full or unlisted <= gone, f"{route}: a full sync kept jobs it no longer lists"
            for (a, before), (b, after) in itertools.pairwise(rows):
                assert a != b or canonical_json(before) != canonical_json(after), (
                    f"{b}: a history row, no change"
                )

    run_state_machine_as_test(
        TwoRoutes,
        settings=settings(
            max_examples=examples,
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
