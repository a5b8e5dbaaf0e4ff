"""The gateway harness: the real gateway, on loopback only, turns native fakes into providers.md's shapes."""

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests import native_fakes as nf
from tests.gateway import (
    GATEWAY_DIR,
    GATEWAY_VERSION,
    Gateway,
    Route,
    RouteFactory,
    installed_version,
    listening_addresses,
    provider_headers,
)

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def ms(stamp: str | None) -> int | None:
    """What JavaScript's new Date(stamp).getTime() gives: milliseconds, sub-millisecond digits dropped."""
    return None if stamp is None else (datetime.fromisoformat(stamp) - EPOCH) // timedelta(milliseconds=1)


def get(route: Route, path: str = "", headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{route.base_url}/fine_tuning/jobs{path}", params=params, headers=headers or route.headers
    )


def test_gateway_is_the_pinned_release_and_listens_on_loopback_only(gateway: Gateway) -> None:
    assert installed_version() == GATEWAY_VERSION
    pinned = {"hono": "4.9.7", "@hono/node-server": "1.13.5"}
    for name, version in pinned.items():
        assert (
            json.loads((GATEWAY_DIR / "node_modules" / name / "package.json").read_text())["version"]
            == version
        )
    assert listening_addresses(gateway.port) == [f"127.0.0.1:{gateway.port}"]
    assert httpx.get(gateway.url + "/").text == "AI Gateway says hey!"


def test_bedrock_list_is_one_unpaged_page_of_encoded_arns(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("bedrock", 130)
    with gateway_route("bedrock", jobs) as route:
        first = get(route, limit=100)
        again = get(route, limit=100, after=first.json()["data"][-1]["id"])
        requests = route.fake.list_requests()
    assert first.status_code == 200 and first.headers["x-portkey-provider"] == "bedrock"
    body = first.json()
    assert set(body) == {"object", "data", "total_count", "last_id"}  # no has_more
    assert body["total_count"] == len(body["data"]) == nf.DEFAULT_PAGE_SIZE["bedrock"] == 100
    assert body["last_id"] in route.fake.tokens  # Bedrock's nextToken, not a job id
    status = {"Completed": "succeeded", "Failed": "failed", "InProgress": "running"}
    status |= {"Stopping": "cancelled", "Stopped": "cancelled"}
    expected = [
        {
            "id": quote(j["jobArn"], safe=""),
            "job_name": j["jobName"],
            "object": "finetune",
            "status": status[j["status"]],
            "created_at": ms(j["creationTime"]),
            "finished_at": ms(j.get("endTime")),
            **({"fine_tuned_model": j["customModelArn"]} if "customModelArn" in j else {}),
            "suffix": j["customModelName"],
            "training_file": "",
            "validation_file": "",
            "hyperparameters": {"learning_rate_multiplier": None, "batch_size": None, "n_epochs": None},
            "error": {},
        }
        for j in jobs[:100]
    ]
    assert body["data"] == expected
    assert "%3A" in body["data"][0]["id"] and "%2F" in body["data"][0]["id"]
    assert {j["status"] for j in body["data"]} == {"running", "succeeded", "failed", "cancelled"}
    # limit and after are dropped: every request gets the upstream's first page
    assert again.status_code == 200 and again.json()["data"] == body["data"]
    assert [r.params for r in requests] == [{}, {}]
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in requests)


def test_bedrock_retrieve_is_richer_than_the_list(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("bedrock", 12)
    failed = next(j for j in jobs if j["status"] == "Failed")
    with gateway_route("bedrock", jobs) as route:
        listed = {j["id"]: j for j in get(route).json()["data"]}
        job_id = quote(failed["jobArn"], safe="")
        got = get(route, f"/{job_id}")
        missing = get(route, "/" + quote(failed["jobArn"] + "x", safe=""))
    assert got.status_code == 200
    assert got.json() == listed[job_id] | {
        "fine_tuned_model": failed["outputModelName"],
        "training_file": quote(failed["trainingDataConfig"]["s3Uri"], safe=""),
        "hyperparameters": {"learning_rate_multiplier": 1e-05, "batch_size": 1, "n_epochs": 2},
        "error": failed["failureMessage"],  # a string here, {} in the list
    }
    assert missing.status_code == 404
    message = f"bedrock error: Fine-tuning job {failed['jobArn']}x not found."
    assert missing.json() == {
        "error": {"message": message, "type": None, "param": None, "code": None},
        "provider": "bedrock",
    }


def vertex_expected(j: dict[str, Any]) -> dict[str, Any]:
    spec, stats = j["supervisedTuningSpec"], j.get("tuningDataStats", {}).get("supervisedTuningDataStats", {})
    state = j["state"].removeprefix("JOB_STATE_")
    status = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled", "RUNNING": "running"}
    out: dict[str, Any] = {
        "id": j["name"].rsplit("/", 1)[-1],
        "object": "finetune",
        "status": status.get(state, "queued"),
        "created_at": ms(j["createTime"]),
        **({"error": j["error"]} if "error" in j else {}),
        **({"fine_tuned_model": j["tunedModel"]["model"]} if "tunedModel" in j else {}),
        **({"finished_at": ms(j["endTime"])} if "endTime" in j else {}),
        "hyperparameters": {
            "batch_size": spec["hyperParameters"]["adapterSize"],
            "learning_rate_multiplier": spec["hyperParameters"]["learningRateMultiplier"],
            "n_epochs": spec["hyperParameters"]["epochCount"],
        },
        "model": j["baseModel"],
        **({"trained_tokens": stats["totalBillableTokenCount"]} if stats else {}),
        "training_file": quote(spec["trainingDatasetUri"], safe=""),
    }
    if "validationDatasetUri" in spec:
        out["validation_file"] = quote(spec["validationDatasetUri"], safe="")
    return out


def test_vertex_first_page_then_the_job_id_cursor_is_refused(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("vertex-ai", 130)
    with gateway_route("vertex-ai", jobs) as route:
        first = get(route, limit=100)
        second = get(route, limit=100, after=first.json()["last_id"])
        requests = route.fake.list_requests()
    body = first.json()
    assert first.status_code == 200 and first.headers["x-portkey-provider"] == "vertex-ai"
    assert body == {
        "data": [vertex_expected(j) for j in jobs[:100]],
        "object": "list",
        "first_id": body["data"][0]["id"],
        "last_id": body["data"][-1]["id"],
        "has_more": True,
    }
    running = body["data"][0]
    assert running["status"] == "running" and isinstance(running["trained_tokens"], str)
    assert running["created_at"] % 1000 == 876  # RFC 3339 with microseconds -> milliseconds
    failed = next(j for j in body["data"] if j["status"] == "failed")
    assert failed["error"] == {"code": 3, "message": failed["error"]["message"]}
    assert {j["status"] for j in body["data"]} == {"running", "queued", "succeeded", "failed", "cancelled"}
    assert second.status_code == 400
    assert second.json() == {
        "error": {"code": 400, "message": "Invalid page token.", "status": "INVALID_ARGUMENT"},
        "provider": "vertex-ai",
    }
    assert [r.params for r in requests] == [
        {"pageSize": "100"},  # pageToken= is sent empty
        {"pageSize": "100", "pageToken": body["last_id"]},
    ]


def test_vertex_pages_through_when_the_fake_takes_job_ids(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("vertex-ai", 130)
    with gateway_route("vertex-ai", jobs, accept_job_id_as_token=True) as route:
        first = get(route, limit=100).json()
        second = get(route, limit=100, after=first["last_id"])
        got = get(route, f"/{first['data'][5]['id']}")
        missing = get(route, "/4999")
    assert second.status_code == 200
    assert second.json()["data"] == [vertex_expected(j) for j in jobs[100:]]
    assert second.json()["has_more"] is False
    assert got.status_code == 200 and got.json() == first["data"][5]
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_vertex_job_without_supervised_spec_fails_the_whole_page(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("vertex-ai", 5)
    jobs.insert(2, nf.vertex_preference_job(99))
    with gateway_route("vertex-ai", jobs) as route:
        page = get(route, limit=100)
    assert page.status_code == 500
    assert page.json() == {"status": "failure", "message": "Something went wrong"}


def fireworks_expected(j: dict[str, Any]) -> dict[str, Any]:
    state = j["state"].removeprefix("JOB_STATE_")
    status = {"COMPLETED": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled", "VALIDATING": "queued"}
    out: dict[str, Any] = {
        "id": j["name"].rsplit("/", 1)[-1],
        "model": j["baseModel"].rsplit("/", 1)[-1],
        "suffix": j["outputModel"],
        "training_file": j["dataset"].rsplit("/", 1)[-1],
        **(
            {"validation_file": j["evaluationDataset"].rsplit("/", 1)[-1]} if "evaluationDataset" in j else {}
        ),
        "hyperparameters": {"n_epochs": j["epochs"], "learning_rate": j["learningRate"]},
        "created_at": ms(j["createTime"]),
        **({"completed_at": ms(j["completedTime"])} if "completedTime" in j else {}),
        "status": status.get(state, "running"),
        **({"error": j["status"]} if state == "FAILED" else {}),
        "fine_tuned_model": j["outputModel"],
    }
    return out


def test_fireworks_first_page_then_the_job_id_cursor_is_refused(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("fireworks-ai", 130)
    with gateway_route("fireworks-ai", jobs) as route:
        first = get(route, limit=100)
        second = get(route, limit=100, after=first.json()["last_id"])
        requests = route.fake.list_requests()
    body = first.json()
    assert first.status_code == 200 and first.headers["x-portkey-provider"] == "fireworks-ai"
    assert body == {
        "object": "list",
        "data": [fireworks_expected(j) for j in jobs[:100]],
        "first_id": body["data"][0]["id"],
        "last_id": body["data"][-1]["id"],
        "has_more": True,
    }
    assert all("finished_at" not in j and "object" not in j for j in body["data"])
    failed = next(j for j in body["data"] if j["status"] == "failed")
    assert failed["error"]["code"] == "INVALID_ARGUMENT" and failed["completed_at"] > failed["created_at"]
    assert {j["status"] for j in body["data"]} == {"running", "queued", "succeeded", "failed", "cancelled"}
    assert second.status_code == 400 and second.json() == {}  # the upstream's error body is lost
    assert [r.params for r in requests] == [
        {"pageToken": "1", "pageSize": "100"},
        {"pageToken": body["last_id"], "pageSize": "100"},
    ]


def test_fireworks_pages_through_when_the_fake_takes_job_ids(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("fireworks-ai", 130)
    with gateway_route("fireworks-ai", jobs, accept_job_id_as_token=True) as route:
        first = get(route, limit=100).json()
        second = get(route, limit=100, after=first["last_id"])
        got = get(route, f"/{first['data'][7]['id']}")
    assert second.status_code == 200
    assert second.json()["data"] == [fireworks_expected(j) for j in jobs[100:]]
    assert second.json()["has_more"] is False
    assert got.status_code == 200 and got.json() == first["data"][7]


def test_azure_lists_natively_paged_with_azure_statuses(gateway_route: RouteFactory) -> None:
    jobs = nf.make_native_jobs("azure-openai", 30)
    with gateway_route("azure-openai", jobs) as route:
        first = get(route, limit=20)
        second = get(route, limit=20, after=first.json()["data"][-1]["id"])
        pending = next(j for j in jobs if j["status"] == "pending")
        got = get(route, f"/{pending['id']}")
        requests = route.fake.list_requests()
    assert first.json() == {"data": jobs[:20], "has_more": True, "object": "list"}  # passed through as is
    assert second.json() == {"data": jobs[20:], "has_more": False, "object": "list"}
    assert {"notRunning", "pending", "created"} <= {j["status"] for j in first.json()["data"]}
    assert got.json() == pending | {"status": "queued"}  # retrieve maps created/pending; list does not
    assert requests[1].params == {"limit": "20", "after": jobs[19]["id"], "api-version": nf.AZURE_API_VERSION}


@pytest.mark.parametrize("provider", ["bedrock", "vertex-ai", "fireworks-ai", "azure-openai"])
def test_provider_headers_route_like_the_config(gateway_route: RouteFactory, provider: str) -> None:
    with gateway_route(provider, nf.make_native_jobs(provider, 3)) as route:
        by_config = get(route)
        by_headers = get(route, headers=provider_headers(provider, route.upstream))
    assert by_config.status_code == by_headers.status_code == 200
    assert by_headers.json() == by_config.json() and len(by_config.json()["data"]) == 3


def test_wrong_credentials_get_the_providers_refusal(gateway_route: RouteFactory) -> None:
    with gateway_route("vertex-ai") as route:
        config = json.loads(route.env["PORTKEY_CONFIG"]) | {"api_key": "ya29.expired"}
        refused = get(route, headers=route.headers | {"x-portkey-config": json.dumps(config)})
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"


UPSTREAM_429 = {
    "bedrock": {
        "error": {"message": "bedrock error: Too many requests", "type": None, "param": None, "code": None},
        "provider": "bedrock",
    },
    "vertex-ai": {
        "error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"},
        "provider": "vertex-ai",
    },
    "fireworks-ai": {},  # the gateway loses Fireworks' error body
    "azure-openai": {"error": {"code": "429", "message": "Too many requests"}},
}


@pytest.mark.parametrize("provider", ["bedrock", "vertex-ai", "fireworks-ai", "azure-openai"])
def test_upstream_status_and_retry_after_pass_through(gateway_route: RouteFactory, provider: str) -> None:
    with gateway_route(provider, nf.make_native_jobs(provider, 3)) as route:
        throttled = nf.native_error(provider, 429, "Too many requests")
        throttled.headers["retry-after"] = "7"
        route.fake.faults.append(throttled)
        refused, then = get(route), get(route)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
    assert refused.json() == UPSTREAM_429[provider]
    assert then.status_code == 200 and len(then.json()["data"]) == 3
    assert len(route.fake.requests) == 2  # the gateway itself does not retry (no retry in the config)
