"""job_history holds changes of meaning only: a job served differently by the list and by its
single-job GET (numbers re-serialized, Azure's statuses renamed, Bedrock's GET richer) is no change."""

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from archiver import db, reports
from archiver.models import job_history
from archiver.result import SyncResult
from archiver.store import content_hash
from archiver.sync import sync
from tests import native_fakes as nf
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi, finish_job, make_jobs, serve
from tests.gateway import Gateway, RouteFactory, env_headers, route_env
from tests.test_sync import api_for

DEEP = 150  # an in-flight job this deep is fetched by id when the head walk stops early (limit 100)


# -- the meaning, pure --
def test_numbers_of_equal_value_have_one_hash() -> None:
    listed = json.loads('{"id": "ftjob-1", "hyperparameters": {"lrm": 2.0, "x": 1e-05, "big": 1e21}}')
    fetched = json.loads('{"id": "ftjob-1", "hyperparameters": {"lrm": 2, "x": 0.00001, "big": 1E+21}}')
    assert content_hash(listed, "openai") == content_hash(fetched, "openai")
    other = json.loads('{"id": "ftjob-1", "hyperparameters": {"lrm": 2.5, "x": 1e-05, "big": 1e21}}')
    assert content_hash(other, "openai") != content_hash(listed, "openai")


def test_azures_created_and_pending_are_queued_for_azure_only() -> None:
    hashes = {s: content_hash({"id": "ftjob-1", "status": s}, "azure-openai") for s in ("created", "pending")}
    queued = content_hash({"id": "ftjob-1", "status": "queued"}, "azure-openai")
    assert hashes == {"created": queued, "pending": queued}
    assert content_hash({"id": "ftjob-1", "status": "notRunning"}, "azure-openai") != queued
    assert content_hash({"id": "ftjob-1", "status": "running"}, "azure-openai") != queued
    assert content_hash({"id": "ftjob-1", "status": "pending"}, "openai") != content_hash(
        {"id": "ftjob-1", "status": "queued"}, "openai"
    )


# The gateway's (1.15.2) list item and single-job GET of one running Bedrock job (its samples).
BEDROCK_ID = (
    "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-customization-job%2F"
    "amazon.titan-text-express-v1%3A0%3A8k%2Fc377f7e31cc7"
)
BEDROCK_LISTED = (
    f'{{"id":"{BEDROCK_ID}","job_name":"job-0000","object":"finetune","status":"running",'
    '"created_at":1748779200000,"finished_at":null,"suffix":"custom-0000","training_file":"",'
    '"validation_file":"","hyperparameters":{"learning_rate_multiplier":null,"batch_size":null,'
    '"n_epochs":null},"error":{}}'
)
BEDROCK_FETCHED = (
    f'{{"id":"{BEDROCK_ID}","job_name":"job-0000","object":"finetune","status":"running",'
    '"created_at":1748779200000,"finished_at":null,"fine_tuned_model":"custom-0000",'
    '"training_file":"s3%3A%2F%2Fft-bucket%2Fjob-0000%2Ftrain.jsonl","validation_file":"",'
    '"hyperparameters":{"learning_rate_multiplier":1e-05,"batch_size":1,"n_epochs":2},"error":{}}'
)


def test_bedrocks_list_item_and_richer_get_have_one_hash_but_a_new_status_does_not() -> None:
    listed, fetched = json.loads(BEDROCK_LISTED), json.loads(BEDROCK_FETCHED)
    assert content_hash(listed, "bedrock") == content_hash(fetched, "bedrock")
    failed = {**fetched, "status": "failed", "error": "Training data validation failed"}
    assert content_hash(failed, "bedrock") != content_hash(listed, "bedrock")
    assert content_hash(listed, "openai") != content_hash(fetched, "openai")


# -- the regression: runs that alternate between listing an in-flight job and fetching it --
def swap(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, (old, text)
    return text.replace(old, new)


def openai_route(job: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    """Listed as Python writes it; its GET as the gateway's JavaScript writes it again."""
    job["hyperparameters"] = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 2.0}
    job["metadata"] = {"floor": "1e-05", "lr": 1e-05}
    return lambda j: swap(
        swap(json.dumps(j), '"learning_rate_multiplier": 2.0', '"learning_rate_multiplier": 2'),
        '"lr": 1e-05',
        '"lr": 0.00001',
    )


def azure_route(job: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    """Listed with Azure's own status; its GET says queued."""
    job["status"] = "pending"
    return lambda j: json.dumps({**j, "status": "queued" if j["status"] == "pending" else j["status"]})


def bedrock_route(job: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    """Listed from Bedrock's summary; its GET has the files, hyperparameters and output model."""
    job |= {"training_file": "", "validation_file": "", "suffix": "custom-0150", "error": {}}
    job["hyperparameters"] = {"learning_rate_multiplier": None, "batch_size": None, "n_epochs": None}

    def fetched(j: dict[str, Any]) -> str:
        richer = {k: v for k, v in j.items() if k != "suffix"} | {
            "training_file": "s3%3A%2F%2Fft-bucket%2Fjob-0150%2Ftrain.jsonl",
            "fine_tuned_model": "custom-0150",
            "hyperparameters": {"learning_rate_multiplier": 1e-05, "batch_size": 1, "n_epochs": 2},
        }
        return json.dumps(richer)

    return fetched


ROUTES = {"openai": openai_route, "azure-openai": azure_route, "bedrock": bedrock_route}


def fake_route(provider: str) -> tuple[FakeApi, dict[str, Any]]:
    """A settled history but for one job in flight at DEEP, its GET served as `provider`'s route does."""
    jobs = make_jobs(300, seed=120)
    for job in jobs[:5]:
        finish_job(job)
    deep = jobs[DEEP]
    deep |= {"status": "running", "finished_at": None, "fine_tuned_model": None, "trained_tokens": None}
    deep |= {"estimated_finish": deep["created_at"] + 3600, "result_files": [], "error": None}
    fake = FakeApi(jobs)
    fake.provider = provider
    fake.retrieved = ROUTES[provider](deep)
    return fake, deep


def fetched_by_id(fake: FakeApi, since: int, job_id: str) -> bool:
    return any(r.path.endswith(f"/fine_tuning/jobs/{job_id}") for r in fake.requests[since:])


def history_of(engine: sa.Engine, job_id: str) -> list[tuple[Any, ...]]:
    h = job_history.c
    with engine.connect() as conn:
        query = sa.select(h.sync_run_id, h.status, h.observed_via).where(h.job_id == job_id).order_by(h.id)
        return [tuple(r) for r in conn.execute(query)]


def timeline(engine: sa.Engine, job_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        _, rows = reports.run_report(conn, "job_timeline", {"job_id": job_id})
    return [(run, status, changed) for _, run, status, changed in rows]


def alternate(fake: FakeApi, engine: sa.Engine, job_id: str, runs: int) -> list[SyncResult]:
    """`runs` syncs, incremental and full by turns: the job is fetched by id, then listed."""
    results = []
    for i in range(runs):
        since = len(fake.requests)
        results.append(sync(api_for(fake), engine, full=i % 2 == 1))
        assert fetched_by_id(fake, since, job_id) == (i % 2 == 0), f"run {i}"
    return results


@pytest.mark.parametrize("provider", sorted(ROUTES))
def test_an_in_flight_job_alternating_between_list_and_get_gets_no_phantom_history_row(
    engine: sa.Engine, provider: str
) -> None:
    fake, deep = fake_route(provider)
    first = sync(api_for(fake), engine)
    assert (first.inserted, first.updated) == (300, 0)
    results = alternate(fake, engine, deep["id"], 6)
    assert [(r.inserted, r.updated) for r in results] == [(0, 0)] * 6
    assert history_of(engine, deep["id"]) == [(1, deep["status"], "list")]
    assert timeline(engine, deep["id"]) == [(1, deep["status"], "first seen")]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(job_history)).scalar() == 300


@pytest.mark.parametrize("provider", sorted(ROUTES))
def test_a_real_change_seen_by_get_is_one_history_row_observed_via_get(
    engine: sa.Engine, provider: str
) -> None:
    fake, deep = fake_route(provider)
    sync(api_for(fake), engine)
    deep["estimated_finish"] += 600  # the job moves on; the next run fetches it, the one after lists it
    fetched, listed = alternate(fake, engine, deep["id"], 2)
    assert (fetched.updated, listed.updated) == (1, 0)
    as_fetched = "queued" if provider == "azure-openai" else deep["status"]  # the GET's name
    assert history_of(engine, deep["id"]) == [(1, deep["status"], "list"), (2, as_fetched, "get")]
    assert [changed for _, _, changed in timeline(engine, deep["id"])] == ["first seen", "estimated_finish"]


# -- through the real gateway (1.15.2): its GET re-serializes the job, and renames Azure's statuses --
AZURE_DEEP = {150: "pending", 240: "created"}  # in flight, fetched by id when the head walk stops early


def azure_history() -> list[dict[str, Any]]:
    jobs = nf.make_native_jobs("azure-openai", 250)
    for job in jobs[:4]:
        job |= {"status": "succeeded", "finished_at": job["created_at"] + 2340, "estimated_finish": None}
    for i, status in AZURE_DEEP.items():
        job = jobs[i]
        job |= {"status": status, "finished_at": None, "fine_tuned_model": None, "trained_tokens": None}
        job |= {"result_files": [], "error": {}, "estimated_finish": None}
    return jobs


def openai_history() -> list[dict[str, Any]]:
    jobs = make_jobs(250, seed=121)
    for job in jobs[:5]:
        finish_job(job)
    for i in AZURE_DEEP:
        job = jobs[i]
        job |= {"status": "running", "finished_at": None, "fine_tuned_model": None, "trained_tokens": None}
        job |= {"estimated_finish": job["created_at"] + 3600, "result_files": [], "error": None}
        job["hyperparameters"] = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 2.0}
        job["metadata"] = {"lr": 1e-05}
    return jobs


@contextmanager
def openai_behind_gateway(gateway: Gateway) -> Iterator[tuple[dict[str, str], FakeApi]]:
    """FakeApi as OpenAI behind the gateway (a custom host): PORTKEY_* settings, and the fake."""
    fake = FakeApi(openai_history())
    fake.required = {"authorization": "Bearer sk-gateway-test"}
    with serve(fake) as upstream:
        config = {"provider": "openai", "api_key": "sk-gateway-test", "custom_host": upstream}
        yield route_env(gateway, config), fake


def alternate_cli(env: dict[str, str], requests: list[Any], deep_ids: list[str], runs: int) -> list[str]:
    """`runs` syncs, incremental and full by turns; the incremental ones fetch the deep jobs by id."""
    summaries = []
    for i in range(runs):
        since = len(requests)
        done = run_cli("sync", *(["--full"] if i % 2 else []), env=env)
        assert done.returncode == 0, done.stderr
        summaries += [line for line in done.stderr.splitlines() if line.startswith("Synced")]
        got = {job_id for job_id in deep_ids for r in requests[since:] if r.path.endswith(quote(job_id))}
        assert got == (set(deep_ids) if i % 2 == 0 else set()), f"run {i}: {summaries[-1]}"
    return summaries


def histories(db_url: str) -> dict[str, list[str | None]]:
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            h = job_history.c
            rows = conn.execute(sa.select(h.job_id, h.observed_via).order_by(h.id)).all()
    finally:
        engine.dispose()
    out: dict[str, list[str | None]] = {}
    for job_id, via in rows:
        out.setdefault(job_id, []).append(via)
    return out


@pytest.mark.parametrize("provider", ["openai", "azure-openai"])
def test_through_the_gateway_in_flight_jobs_alternating_between_list_and_get_get_no_phantom_row(
    gateway: Gateway, gateway_route: RouteFactory, db_url: str, provider: str
) -> None:
    with ExitStack() as stack:
        if provider == "openai":
            settings, fake = stack.enter_context(openai_behind_gateway(gateway))
            requests: list[Any] = fake.requests
        else:
            route = stack.enter_context(gateway_route("azure-openai", azure_history()))
            settings, requests = route.env, route.fake.requests
        env = cli_env(settings["PORTKEY_BASE_URL"], **settings, ARCHIVER_DATABASE_URL=db_url)
        first = run_cli("sync", env=env)
        assert "(250 new, 0 changed, 0 unchanged)" in first.stderr, first.stderr
        listed = {
            j["id"]: j
            for j in httpx.get(
                f"{settings['PORTKEY_BASE_URL']}/fine_tuning/jobs",
                params={"limit": 250},
                headers=env_headers(settings),
            ).json()["data"]
        }
        deep_ids = [job_id for i, job_id in enumerate(listed) if i in AZURE_DEEP]
        fetched = [
            httpx.get(
                f"{settings['PORTKEY_BASE_URL']}/fine_tuning/jobs/{quote(job_id)}",
                headers=env_headers(settings),
            )
            for job_id in deep_ids
        ]
        summaries = alternate_cli(env, requests, deep_ids, 5)
    as_text = {job_id: json.dumps(listed[job_id], sort_keys=True) for job_id in deep_ids}
    got = {
        job_id: json.dumps(reply.json(), sort_keys=True)
        for job_id, reply in zip(deep_ids, fetched, strict=True)
    }
    assert all(as_text[job_id] != got[job_id] for job_id in deep_ids)  # the GET says them otherwise
    assert all(", 0 changed," in line and "0 new" in line for line in summaries), summaries
    assert histories(db_url) == {job_id: ["list"] for job_id in listed}
