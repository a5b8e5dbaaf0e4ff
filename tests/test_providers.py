"""`archiver sync` through the real gateway, per provider: the archive, table by table, against what it sent.

The expectation is built from the gateway's own pages (fetched here with httpx) by rules written for
this test, not with archiver's code: times in milliseconds become seconds, `completed_at` is the end
time, numeric strings are integers, statuses fall into status_class, and `provider` is the provider
that answered.
"""

import json
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from archiver import db, models
from tests import native_fakes as nf
from tests.conftest import cli_env, run_cli
from tests.gateway import Route, RouteFactory, provider_config

MS_PROVIDERS = ("bedrock", "vertex-ai", "fireworks-ai")  # Azure's times are seconds already
STATUS_CLASS = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "pending": "queued",  # Azure's own names, unmapped on its list
    "created": "queued",
    "notRunning": "queued",
}
JOB_COLUMNS = [
    "id",
    "provider",
    "object",
    "status",
    "status_class",
    "created_at",
    "finished_at",
    "estimated_finish",
    "model",
    "fine_tuned_model",
    "trained_tokens",
    "training_file",
    "validation_file",
    "seed",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "raw",
]
COLUMNS = {
    "jobs": JOB_COLUMNS,
    "errors": ["job_id", "code", "message", "param"],
    "result_files": ["job_id", "position", "file_id"],
    "integrations": ["job_id", "position"],
}
DAY = 86400
README = Path(__file__).parent.parent / "docs" / "providers.md"  # the provider matrix and configs


# -- the expectation: what the archive must hold for jobs the gateway served --
def hp(value: Any) -> str | None:
    return None if value is None else str(value)


def seconds(provider: str, value: int | None) -> int | None:
    return value // 1000 if value is not None and provider in MS_PROVIDERS else value


def expected_archive(provider: str, served: dict[str, dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}
    for job_id, j in sorted(served.items()):
        tokens = j.get("trained_tokens")
        hyper = j.get("hyperparameters") or {}
        out["jobs"].append(
            (
                job_id,
                provider,
                j.get("object"),
                j["status"],
                STATUS_CLASS[j["status"]],
                seconds(provider, j["created_at"]),
                seconds(provider, j.get("finished_at") or j.get("completed_at")),
                j.get("estimated_finish"),
                j.get("model"),
                j.get("fine_tuned_model"),
                None if tokens is None else int(tokens),
                j.get("training_file"),
                j.get("validation_file"),
                j.get("seed"),
                hp(hyper.get("n_epochs")),
                hp(hyper.get("batch_size")),
                hp(hyper.get("learning_rate_multiplier")),
                j,
            )
        )
        err = j.get("error") or {}
        if isinstance(err, str):  # Bedrock's single-job GET: the failure message alone
            out["errors"].append((job_id, None, err, None))
        elif err:
            out["errors"].append((job_id, str(err["code"]), err["message"], None))
        out["result_files"] += [(job_id, i, f) for i, f in enumerate(j.get("result_files") or [])]
    return out


def read_archive(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            out = {}
            for name, cols in COLUMNS.items():
                table = models.metadata.tables[name]
                query = sa.select(*(table.c[c] for c in cols)).order_by(*table.primary_key.columns)
                out[name] = [tuple(row) for row in conn.execute(query)]
            return out
    finally:
        engine.dispose()


def assert_archive(db_url: str, provider: str, served: dict[str, dict[str, Any]]) -> None:
    actual, expected = read_archive(db_url), expected_archive(provider, served)
    for name in COLUMNS:
        assert actual[name] == expected[name], f"table {name} differs from what the gateway served"


def gaps(db_url: str) -> list[dict[str, Any]]:
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(models.sync_gaps))]
    finally:
        engine.dispose()


def age_gaps(db_url: str, by: float) -> None:
    """Pretend the route refused to page `by` seconds earlier than it did."""
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.begin() as conn:
            g = models.sync_gaps.c
            conn.execute(sa.update(models.sync_gaps).values(blocked_at=g.blocked_at - by))
    finally:
        engine.dispose()


# -- the gateway, asked directly --
def gateway_list(route: Route, limit: int, *, every_page: bool = False) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        reply = httpx.get(f"{route.base_url}/fine_tuning/jobs", params=params, headers=route.headers)
        assert reply.status_code == 200, reply.text
        jobs += reply.json()["data"]
        if not every_page or not reply.json()["has_more"]:
            return jobs
        params["after"] = jobs[-1]["id"]


def gateway_job(route: Route, job_id: str) -> dict[str, Any]:
    reply = httpx.get(f"{route.base_url}/fine_tuning/jobs/{job_id}", headers=route.headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def by_id(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in jobs}


# -- archiver, run as a user would --
def run(route: Route, db_url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """One `archiver sync`; returns it and its warning lines. No stderr line may repeat."""
    done = run_cli("sync", *args, env=cli_env(route.base_url, **route.env, ARCHIVER_DATABASE_URL=db_url))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(set(lines)), f"a line repeats:\n{done.stderr}"
    return done, [line for line in lines if line.startswith("WARNING")]


def status(route: Route, db_url: str) -> list[str]:
    """`archiver status` of an archive that knows it is partial: PARTIAL, exit 1."""
    done = run_cli("status", env=cli_env(route.base_url, **route.env, ARCHIVER_DATABASE_URL=db_url))
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and lines[0].startswith("PARTIAL: "), done.stdout + done.stderr
    return lines


def cursors(route: Route, since: int) -> list[nf.Seen]:
    """List requests from `since` on that asked the upstream for a page after the first."""
    token = nf.LIST_PARAMS[route.fake.provider][1]
    return [r for r in route.fake.requests[since:] if r.params.get(token, "") not in ("", "1")]


# -- native jobs moving on --
def native_start(provider: str, job: dict[str, Any]) -> None:
    """Put an ended native job back in flight."""
    ended = ("endTime", "tunedModel", "error", "completedTime", "failureMessage", "outputModelArn")
    for key in (*ended, "customModelArn"):
        job.pop(key, None)
    if provider == "bedrock":
        job["status"] = "InProgress"
        return
    job["state"] = "JOB_STATE_RUNNING"
    if provider == "fireworks-ai":
        job["status"] = {"code": "OK", "message": ""}


def native_finish(provider: str, job: dict[str, Any], failed: bool = False) -> None:
    end = nf.rfc3339(nf.NOW_MS + 3_600_000)  # after every job's start, the newer ones' too
    if provider == "bedrock":
        job |= {"status": "Failed" if failed else "Completed", "endTime": end}
        if failed:
            job["failureMessage"] = "Training data validation failed: row 3 is not valid JSON."
        else:
            job["customModelArn"] = job["outputModelArn"] = job["jobArn"].replace("-job/", "/") + "m"
    elif provider == "vertex-ai":
        job |= {"state": "JOB_STATE_SUCCEEDED", "endTime": end}
        job["tunedModel"] = {"model": job["name"].replace("tuningJobs", "models") + "@1"}
        stats = {"totalBillableTokenCount": "61234", "tuningDatasetExampleCount": "500"}
        job.setdefault("tuningDataStats", {"supervisedTuningDataStats": stats})
    else:
        job |= {"state": "JOB_STATE_COMPLETED", "completedTime": end}


def newer_jobs(provider: str, n: int) -> list[dict[str, Any]]:
    """n native jobs created after every job make_native_jobs makes, newest first (in flight)."""
    rng = random.Random(f"{provider}:newer")
    return [nf.MAKERS[provider](-k, rng) for k in range(n, 0, -1)]


# -- the cases --
@pytest.mark.parametrize("provider", ["vertex-ai", "fireworks-ai", "azure-openai"])
def test_a_route_that_pages_archives_every_job(
    gateway_route: RouteFactory, db_url: str, provider: str
) -> None:
    with gateway_route(provider, nf.make_native_jobs(provider, 130), accept_job_id_as_token=True) as route:
        done, warnings = run(route, db_url)
        served = gateway_list(route, 100, every_page=True)
    assert warnings == []
    if provider == "azure-openai":  # its own names, unmapped on the list
        assert {"pending", "created", "notRunning"} <= {j["status"] for j in served}
    assert "Synced 130 jobs (130 new, 0 changed, 0 unchanged) in 2 pages, 2 requests" in done.stderr
    assert len(served) == 130
    assert_archive(db_url, provider, by_id(served))
    assert gaps(db_url) == []


@pytest.mark.parametrize("limit", ["100", "500"])
def test_bedrock_archives_the_first_page_and_says_the_rest_is_unreachable(
    gateway_route: RouteFactory, db_url: str, limit: str
) -> None:
    """The gateway drops limit and after: every request gets Bedrock's first page (100), with no has_more."""
    with gateway_route("bedrock", nf.make_native_jobs("bedrock", 130)) as route:
        started = time.time()
        done, warnings = run(route, db_url, f"--page-size={limit}")
        served = gateway_list(route, int(limit))
        lines = status(route, db_url)
    reason = "the API's pages carry no has_more, so nothing beyond the first page can be reached"
    assert len(warnings) == 1 and warnings[0].endswith(f"is unreachable: {reason}"), done.stderr
    assert "Synced 100 jobs (100 new, 0 changed, 0 unchanged) in 1 page, 1 request" in done.stderr
    assert_archive(db_url, "bedrock", by_id(served))
    [gap] = gaps(db_url)
    assert (gap["after_id"], gap["until_id"], gap["blocked_reason"]) == (served[-1]["id"], None, reason)
    assert started <= gap["blocked_at"] <= time.time()
    assert lines[1].startswith(f"coverage: partial: {reason} (since 20")


def test_bedrock_refreshes_jobs_pushed_off_its_page_one_by_one(
    gateway_route: RouteFactory, db_url: str
) -> None:
    """In-flight jobs that new ones push off the only reachable page are fetched by id (a richer
    object than the list's: a failed one's error is its message, a string)."""
    jobs = nf.make_native_jobs("bedrock", 110)
    for job in jobs[98:100]:
        native_start("bedrock", job)
    with gateway_route("bedrock", jobs) as route:
        run(route, db_url)
        first = gateway_list(route, 100)
        native_finish("bedrock", jobs[98], failed=True)
        native_finish("bedrock", jobs[99])
        route.fake.jobs[:0] = newer_jobs("bedrock", 3)
        before = len(route.fake.requests)
        done, warnings = run(route, db_url)
        assert len(route.fake.requests) - before == 3  # the page, then the two pushed off it
        now_first = gateway_list(route, 100)
        refreshed = {j["id"]: gateway_job(route, j["id"]) for j in first[98:100]}
    assert [j["status"] for j in refreshed.values()] == ["failed", "succeeded"]
    assert isinstance(refreshed[first[98]["id"]]["error"], str)
    assert len(warnings) == 1 and "is unreachable" in warnings[0], done.stderr
    assert_archive(db_url, "bedrock", by_id(first) | by_id(now_first) | refreshed)


@pytest.mark.parametrize("provider", ["vertex-ai", "fireworks-ai"])
def test_a_refused_cursor_leaves_the_first_page_kept_fresh(
    gateway_route: RouteFactory, db_url: str, provider: str
) -> None:
    """The realistic upstream refuses the job id the gateway forwards as its page token (HTTP 400)."""
    jobs = nf.make_native_jobs(provider, 45)
    for job in jobs[17:19]:  # in flight near the end of the first page: new jobs push them off it
        native_start(provider, job)
    with gateway_route(provider, jobs) as route:
        done, warnings = run(route, db_url, "--page-size=20")
        first = gateway_list(route, 20)
        reason = "this provider's pagination does not work through the gateway"
        assert len(warnings) == 1 and "is unreachable: " + reason in warnings[0], done.stderr
        # The page, the refused cursor, and the GET that shows its job is still there.
        assert "Synced 20 jobs (20 new, 0 changed, 0 unchanged) in 1 page, 3 requests" in done.stderr
        assert_archive(db_url, provider, by_id(first))
        [gap] = gaps(db_url)
        assert (gap["after_id"], gap["until_id"]) == (first[-1]["id"], None)
        assert gap["blocked_reason"].startswith(reason)
        assert status(route, db_url)[1].startswith(f"coverage: partial: {reason}")

        # New jobs arrive, the in-flight ones finish; the refused cursor is not asked again today.
        in_flight = [j["id"] for j in first if STATUS_CLASS[j["status"]] in ("queued", "running")]
        for job in jobs[:4] + jobs[17:19]:
            native_finish(provider, job)
        route.fake.jobs[:0] = newer_jobs(provider, 3)
        before = len(route.fake.requests)
        done, warnings = run(route, db_url, "--page-size=20")
        assert cursors(route, before) == []
        now_first = gateway_list(route, 20)
        pushed_off = [i for i in in_flight if i not in by_id(now_first)]
        assert len(pushed_off) == 2 and len(in_flight) == 6
        refreshed = {i: gateway_job(route, i) for i in pushed_off}
        assert len(warnings) == 1 and "is unreachable: " + reason in warnings[0], done.stderr
        assert "Synced 22 jobs (3 new, 6 changed, 13 unchanged) in 1 page, 3 requests" in done.stderr
        assert {STATUS_CLASS[j["status"]] for j in refreshed.values()} == {"succeeded"}
        assert_archive(db_url, provider, by_id(first) | by_id(now_first) | refreshed)
        assert gaps(db_url) == [gap]

        # A day later the cursor is asked once more, and still refused.
        age_gaps(db_url, DAY + 60)
        before, started = len(route.fake.requests), time.time()
        done, warnings = run(route, db_url, "--page-size=20")
        assert len(cursors(route, before)) == 1, done.stderr
        assert len(warnings) == 1 and "is unreachable: " + reason in warnings[0], done.stderr
    [again] = gaps(db_url)
    assert again["blocked_at"] >= started and again["blocked_reason"].startswith(reason)
    assert_archive(db_url, provider, by_id(first) | by_id(now_first) | refreshed)


def test_the_readme_configs_are_the_ones_tested() -> None:
    """The README's PORTKEY_CONFIG examples have exactly the keys these tests route with, and custom
    hosts of the form the gateway needs (it appends the provider's own path)."""
    configs = [json.loads(c) for c in re.findall(r"^export PORTKEY_CONFIG='(.+)'$", README.read_text(), re.M)]
    assert [c["provider"] for c in configs] == ["bedrock", "vertex-ai", "fireworks-ai", "azure-openai"]
    for config in configs:
        assert config.keys() == provider_config(config["provider"], "http://127.0.0.1:1").keys()
    hosts = {c["provider"]: c["custom_host"] for c in configs}
    assert hosts["bedrock"] == "https://bedrock.us-east-1.amazonaws.com"
    assert hosts["vertex-ai"] == "https://us-central1-aiplatform.googleapis.com"  # no /v1
    assert hosts["fireworks-ai"] == "https://api.fireworks.ai/v1/accounts/my-account"
    assert hosts["azure-openai"] == "https://my-resource.openai.azure.com/openai"
