"""sync() against the fake through httpx.MockTransport, on SQLite and PostgreSQL."""

import copy
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from archiver.client import Settings, make_api
from archiver.errors import ApiError
from archiver.models import job_history, sync_runs
from archiver.sync import sync
from tests.conftest import HISTORY_JSON, assert_archive_equals, count_rows, read_archive
from tests.fake_api import AUTH_HEADERS, FakeApi, make_jobs


def api_for(fake: FakeApi, **settings: Any):  # type: ignore[no-untyped-def]
    s = Settings(base_url="http://fake.test/v1", headers=dict(AUTH_HEADERS), **settings)
    return make_api(s, transport=httpx.MockTransport(fake), sleep=lambda _s: None)


def runs(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id))]


def test_full_sync_archives_everything_served(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(250, seed=1))
    result = sync(api_for(fake), engine, limit=40)
    assert_archive_equals(engine, fake.jobs)
    assert (result.pages, result.inserted, result.updated, result.unchanged) == (7, 250, 0, 0)
    assert count_rows(engine, "job_history") == 250
    [run] = runs(engine)
    assert {
        k: run[k]
        for k in (
            "status",
            "mode",
            "pages",
            "requests",
            "jobs_seen",
            "jobs_inserted",
            "jobs_updated",
            "jobs_unchanged",
            "error",
            "base_url",
        )
    } == {
        "status": "succeeded",
        "mode": "incremental",
        "pages": 7,
        "requests": 7,
        "jobs_seen": 250,
        "jobs_inserted": 250,
        "jobs_updated": 0,
        "jobs_unchanged": 0,
        "error": None,
        "base_url": "http://fake.test/v1/",
    }
    assert [r.params for r in fake.list_requests()][:2] == [
        {"limit": "40"},
        {"limit": "40", "after": fake.jobs[39]["id"]},
    ]


def test_second_sync_writes_nothing(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(120, seed=2))
    sync(api_for(fake), engine, limit=50)
    before = read_archive(engine)
    with engine.connect() as conn:
        stamps = conn.execute(
            sa.text("SELECT id, last_seen_at, last_sync_run_id FROM jobs ORDER BY id")
        ).all()
    result = sync(api_for(fake), engine, limit=50, full=True)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 120)
    assert read_archive(engine) == before
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT id, last_seen_at, last_sync_run_id FROM jobs ORDER BY id")).all()
            == stamps
        )
    assert count_rows(engine, "job_history") == 120


def test_changed_job_is_updated_loses_stale_children_and_gains_one_history_row(engine: sa.Engine) -> None:
    jobs = make_jobs(30, seed=3)
    job = jobs[4]
    job.update(
        status="running",
        result_files=["file-a", "file-b", "file-c"],
        error=None,
        integrations=[
            {"type": "wandb", "wandb": {"project": "p", "tags": ["x", "y", "z"]}},
            {"type": "wandb", "wandb": {"project": "q", "tags": ["w"]}},
        ],
    )
    fake = FakeApi(jobs)
    sync(api_for(fake), engine)
    changed = copy.deepcopy(job)
    changed.update(
        status="failed",
        result_files=["file-a"],
        finished_at=job["created_at"] + 60,
        error={"code": "server_error", "message": "boom", "param": None},
        integrations=[{"type": "wandb", "wandb": {"project": "p", "tags": ["y"]}}],
    )
    fake.jobs[4] = changed
    result = sync(api_for(fake), engine, full=True)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 29)
    assert_archive_equals(engine, fake.jobs)
    with engine.connect() as conn:
        history = conn.execute(
            sa.select(job_history.c.sync_run_id, job_history.c.status, HISTORY_JSON)
            .where(job_history.c.job_id == job["id"])
            .order_by(job_history.c.id)
        ).all()
    assert [(*h[:2], json.loads(h[2])) for h in history] == [(1, "running", job), (2, "failed", changed)]


def test_duplicate_ids_within_and_across_pages_last_wins(engine: sa.Engine) -> None:
    jobs = make_jobs(10, seed=4)
    dup = copy.deepcopy(jobs[2])
    dup["status"] = "cancelled"
    fake = FakeApi([*jobs[:5], dup, *jobs[5:]])  # jobs[2] again, later, in the same page
    sync(api_for(fake), engine, limit=100)
    assert_archive_equals(engine, fake.jobs)
    assert count_rows(engine, "jobs") == 10


def test_empty_account(engine: sa.Engine) -> None:
    fake = FakeApi([])
    result = sync(api_for(fake), engine)
    assert (result.pages, result.seen) == (1, 0)
    assert_archive_equals(engine, [])
    assert runs(engine)[0]["status"] == "succeeded"


def test_pages_smaller_than_limit_are_followed(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(95, seed=5), max_limit=20)
    result = sync(api_for(fake), engine, limit=100)
    assert result.pages == 5
    assert_archive_equals(engine, fake.jobs)


class Stuck(FakeApi):
    def list_page(self, params):  # type: ignore[no-untyped-def]
        return super().list_page({"limit": params["limit"]})  # ignores `after`: the cursor never moves


def test_a_cursor_that_does_not_move_fails_instead_of_looping(engine: sa.Engine) -> None:
    fake = Stuck(make_jobs(30, seed=6))
    with pytest.raises(ApiError, match="cursor did not move"):
        sync(api_for(fake), engine, limit=10)
    assert len(fake.list_requests()) == 2
    run = runs(engine)[0]
    # Page 2, page 1 again, cannot follow page 1: one GET shows the cursor's job in place, so it is
    # kept as a page out of order; then the cursor is seen not to move.
    assert (run["status"], run["pages"], run["requests"]) == ("failed", 2, 3)
    assert "cursor did not move" in run["error"]


class EmptyButMore(FakeApi):
    def list_page(self, params):  # type: ignore[no-untyped-def]
        if "after" in params:
            from tests.fake_api import json_reply

            return json_reply(200, {"object": "list", "data": [], "has_more": True})
        return super().list_page(params)


def test_has_more_with_an_empty_page_is_a_truncated_scan(engine: sa.Engine) -> None:
    fake = EmptyButMore(make_jobs(30, seed=7))
    with pytest.raises(ApiError, match="empty page"):
        sync(api_for(fake), engine, limit=10)
    assert count_rows(engine, "jobs") == 10  # the first page stays committed
    assert runs(engine)[0]["status"] == "failed"
