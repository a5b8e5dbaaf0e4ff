"""The HTTP layer alone: retries and their delays (through an injected sleep), errors, paging checks."""

import email.utils
import time
from typing import Any

import httpx
import pytest

from archiver.client import Settings, fetch_page, iter_pages, make_api
from archiver.errors import ApiError, AuthError, ConfigError, TryLater
from tests.fake_api import AUTH_HEADERS, FAULTS, FakeApi, Reply, error_reply, json_reply, make_jobs, serve


def client(fake: FakeApi, **settings: Any):  # type: ignore[no-untyped-def]
    slept: list[float] = []
    s = Settings(base_url="http://fake.test/v1", headers=dict(AUTH_HEADERS), **settings)
    return make_api(s, transport=httpx.MockTransport(fake), sleep=slept.append), slept


def one_page(fake: FakeApi, **settings: Any) -> tuple[Any, list[float], int]:
    api, slept = client(fake, **settings)
    page = fetch_page(api, 10, None)
    return page, slept, api.requests


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ],
)
def test_429_waits_what_the_server_asks(headers: dict[str, str], delay: float) -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(error_reply(429, "Rate limit reached", **headers))
    page, slept, requests = one_page(fake)
    assert (len(page.items), slept, requests) == (3, [delay], 2)


def test_429_with_an_http_date() -> None:
    fake = FakeApi(make_jobs(3))
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    fake.faults.append(error_reply(429, "slow down", **{"retry-after": when}))
    _, slept, _ = one_page(fake)
    assert len(slept) == 1 and 0.5 < slept[0] <= 2.0


def test_retry_after_above_the_cap_stops_without_sleeping() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(error_reply(429, "Rate limit reached", **{"retry-after": "3600"}))
    api, slept = client(fake)
    with pytest.raises(TryLater, match="asked to wait 3600s, more than the 60s cap"):
        fetch_page(api, 10, None)
    assert (slept, api.requests) == ([], 1)


def test_backoff_without_a_header_is_full_jitter_doubling() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.extend(FAULTS["503"]() for _ in range(4))
    _, slept, requests = one_page(fake, backoff_base=0.5)
    assert requests == 5
    assert all(0 <= d <= 0.5 * 2**n for n, d in enumerate(slept)) and len(slept) == 4


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "429", "drop", "truncate", "slow"])
def test_transient_faults_are_retried(kind: str) -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.extend([FAULTS[kind](), FAULTS[kind]()])
    page, slept, requests = one_page(fake)
    assert (len(page.items), len(slept), requests) == (3, 2, 3)


def test_a_web_page_with_200_is_not_the_api_and_is_not_retried() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(FAULTS["html200"]())
    api, slept = client(fake)
    with pytest.raises(
        ConfigError, match=r"this is not the Portkey API \(got text/html\); check PORTKEY_BASE_URL"
    ):
        fetch_page(api, 10, None)
    assert (api.requests, slept) == (1, [])


def test_attempts_are_bounded() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.extend(FAULTS["502"]() for _ in range(10))
    api, slept = client(fake, max_retries=3)
    with pytest.raises(ApiError, match=r"HTTP 502 \(gave up after 4 attempts\)"):
        fetch_page(api, 10, None)
    assert (api.requests, len(slept)) == (4, 3)


def test_the_whole_run_has_a_time_bound() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.extend(FAULTS["503"]() for _ in range(10))
    api, slept = client(fake, max_time=1.0)
    api.clock = lambda: api.started + 5  # the run has already taken 5 s
    with pytest.raises(ApiError, match=r"out of time \(--max-time 1s\)"):
        fetch_page(api, 10, None)
    assert slept == []


def test_max_time_caps_each_request_so_a_stalled_server_cannot_outlive_the_deadline() -> None:
    fake = FakeApi(make_jobs(3))
    fake.slow_seconds = 20  # far past the deadline
    fake.faults.append(FAULTS["slow"]())
    with serve(fake) as base_url:
        s = Settings(base_url=base_url, headers=dict(AUTH_HEADERS), timeout=30, max_time=1.0)
        api = make_api(s, sleep=lambda _s: None)
        started = time.monotonic()
        with pytest.raises(ApiError, match=r"out of time \(--max-time 1s\)"):
            fetch_page(api, 10, None)
    assert time.monotonic() - started < 10  # the 30 s read timeout was cut to what was left of 1 s


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (400, ApiError, "HTTP 400: bad cursor"),
        (
            401,
            AuthError,
            "HTTP 401: bad cursor: the credentials or routing headers were refused; check PORTKEY_API_KEY",
        ),
        (403, AuthError, "the credentials or routing headers were refused"),
        (404, ConfigError, "HTTP 404: bad cursor: no fine-tuning jobs endpoint here; check PORTKEY_BASE_URL"),
        (412, ApiError, "HTTP 412: bad cursor: Portkey budget exhausted"),
        (422, ApiError, "HTTP 422: bad cursor"),
    ],
)
def test_client_errors_are_never_retried(status: int, error: type, message: str) -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(error_reply(status, "bad\n cursor"))
    api, slept = client(fake)
    with pytest.raises(error) as caught:
        fetch_page(api, 10, None)
    assert message in str(caught.value)
    assert str(caught.value).startswith("GET http://fake.test/v1/fine_tuning/jobs: ")
    assert (api.requests, slept) == (1, [])


def test_x_should_retry_overrides_the_status() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(error_reply(503, "down", **{"x-should-retry": "false"}))
    api, _ = client(fake)
    with pytest.raises(ApiError, match="HTTP 503"):
        fetch_page(api, 10, None)
    fake.faults.append(error_reply(400, "try me again", **{"x-should-retry": "true"}))
    page, slept, _ = one_page(fake)
    assert (len(page.items), len(slept)) == (3, 1)


def test_redirects_are_not_followed() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(Reply(302, b"", {"location": "http://elsewhere.test/v1/fine_tuning/jobs"}))
    api, _ = client(fake)
    with pytest.raises(ApiError, match="HTTP 302: redirects are not followed"):
        fetch_page(api, 10, None)
    assert [r.headers["host"] for r in fake.requests] == ["fake.test"]


def test_an_error_body_echoing_our_headers_is_blanked() -> None:
    fake = FakeApi(make_jobs(3))
    fake.faults.append(error_reply(500, f"bad headers: {AUTH_HEADERS}", **{"x-should-retry": "false"}))
    api, _ = client(fake)
    with pytest.raises(ApiError) as caught:
        fetch_page(api, 10, None)
    assert all(v not in str(caught.value) for v in AUTH_HEADERS.values())
    assert "[redacted]" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"object": "page", "data": [], "has_more": False},
        {"object": "list", "data": {}, "has_more": False},
        {"object": "list", "data": [], "has_more": "false"},
    ],
)
def test_an_envelope_that_is_not_a_job_list_is_refused(body: dict[str, Any]) -> None:
    fake = FakeApi()
    fake.faults.append(json_reply(200, body))
    api, _ = client(fake)
    with pytest.raises(ApiError, match="not a job list"):
        fetch_page(api, 10, None)


@pytest.mark.parametrize(("jobs", "truncated"), [(10, True), (9, False)])
def test_a_page_without_has_more_is_the_last_and_a_full_one_is_marked_truncated(
    jobs: int, truncated: bool
) -> None:
    """Bedrock through the gateway: no has_more, the provider's first page whatever is asked; last_id
    (Bedrock's nextToken) only while more jobs exist."""
    fake = FakeApi()
    data = make_jobs(jobs)
    more = {"last_id": "tok"} if truncated else {}
    fake.faults.append(json_reply(200, {"object": "list", "data": data, "total_count": jobs} | more))
    api, _ = client(fake)
    page = fetch_page(api, 10, None)
    assert (page.items, page.has_more, page.truncated) == (data, False, truncated)


def test_a_page_without_has_more_but_with_a_next_token_is_truncated_whatever_its_size() -> None:
    """--page-size above Bedrock's page size: 9 jobs asked 10, and Bedrock's nextToken says more exist."""
    fake = FakeApi()
    data = make_jobs(9)
    fake.faults.append(json_reply(200, {"object": "list", "data": data, "total_count": 9, "last_id": "tok"}))
    api, _ = client(fake)
    assert fetch_page(api, 10, None).truncated


def test_pages_larger_than_limit_are_taken_whole() -> None:
    class Generous(FakeApi):
        def list_page(self, params: dict[str, str]) -> Reply:
            return super().list_page({**params, "limit": str(int(params["limit"]) * 2)})

    fake = Generous(make_jobs(50))
    api, _ = client(fake)
    pages = list(iter_pages(api, 10))
    assert [len(p.items) for p in pages] == [20, 20, 10]
    assert [j["id"] for p in pages for j in p.items] == [j["id"] for j in fake.jobs]


def test_a_two_page_cycle_is_detected() -> None:
    jobs = make_jobs(4)

    class Cycle(FakeApi):
        def list_page(self, params: dict[str, str]) -> Reply:
            first = params.get("after") in (None, jobs[3]["id"])
            return json_reply(
                200, {"object": "list", "data": jobs[:2] if first else jobs[2:], "has_more": True}
            )

    api, _ = client(Cycle(jobs))
    with pytest.raises(ApiError, match="cursor did not move"):
        list(iter_pages(api, 2))
    assert api.requests == 3


@pytest.mark.parametrize(("status", "attempts"), [(502, 3), (503, 3), (501, 1), (520, 1)])
def test_an_html_error_page_is_judged_by_its_status(status: int, attempts: int) -> None:
    """As the README's Faults section says: a 502 page is retried, a 501 or 520 one is final."""
    fake = FakeApi(make_jobs(3))
    fake.faults.extend(
        Reply(status, b"<html>bad gateway</html>", {"content-type": "text/html"}) for _ in range(5)
    )
    api, slept = client(fake, max_retries=2)
    with pytest.raises(ApiError, match=f"HTTP {status}"):
        fetch_page(api, 10, None)
    assert (api.requests, len(slept)) == (attempts, attempts - 1)
