"""The fine-tuning jobs API over httpx: settings, retries, validated pages."""

import email.utils
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from archiver.errors import ApiError, AuthError, ConfigError, OutOfTime, TryLater
from archiver.log import redact_values
from archiver.streams import ahead

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Settings:
    base_url: str = "https://api.portkey.ai/v1"
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # holds secrets
    timeout: float = 30.0
    max_retries: int = 5
    retry_after_cap: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_time: float | None = None  # bound on the whole run, seconds
    ca_bundle: str | None = None


@dataclass
class Api:
    """One HTTP client, its retry policy and the count of requests sent."""

    http: httpx.Client
    settings: Settings
    sleep: Callable[[float], None] | None = None  # between retries; None: wait on `stopping`
    clock: Callable[[], float] = time.monotonic
    requests: int = 0
    counting: threading.Lock = field(default_factory=threading.Lock, repr=False)  # walks in parallel
    stopping: threading.Event = field(default_factory=threading.Event)  # the run failed: no more tries
    started: float = field(default_factory=time.monotonic)
    hold_until: float = 0.0  # on `clock`: a 429 asked every request to wait until then

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()


@dataclass(frozen=True)
class Page:
    items: list[Any]  # as received; an item that is not a job is the caller's to quarantine
    has_more: bool
    after: str | None  # the cursor this page was fetched with
    provider: str | None = None  # who answered, from the gateway's x-portkey-provider header
    truncated: bool = False  # no has_more in the envelope (Bedrock) and a full page: more may exist

    @property
    def last_id(self) -> str | None:
        """The next cursor: the id of the last item that has one."""
        for item in reversed(self.items):
            job_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(job_id, str) and job_id:
                return job_id
        return None


def make_api(settings: Settings, transport: httpx.BaseTransport | None = None, **kw: Any) -> Api:
    http = httpx.Client(
        base_url=settings.base_url.rstrip("/") + "/",
        headers=settings.headers,
        timeout=httpx.Timeout(settings.timeout, connect=min(5.0, settings.timeout)),
        follow_redirects=False,  # httpx would forward x-portkey-* headers to another origin
        verify=tls_context(settings),
        transport=transport,
    )
    return Api(http=http, settings=settings, **kw)


def tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """Always verify; a plain-http base URL (a self-hosted gateway) has no TLS, so loading the CA
    bundle, a tenth of a second of start-up, is skipped for it."""
    if not settings.base_url.startswith("https://"):
        return False
    return ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else True


def iter_pages(api: Api, limit: int, after: str | None = None, prefetch: bool = False) -> Iterator[Page]:
    """Walk the job list from `after` until has_more is false; never loop on a stuck cursor.

    With `prefetch`, the pages are fetched in a background thread that asks for the next page the
    moment one arrives (a walk that goes to the end anyway); without it, not one request more than
    the caller asks for.
    """
    pages = walk_pages(api, limit, after)
    return ahead(pages, 2, abort=api.stopping) if prefetch else pages


def walk_pages(
    api: Api, limit: int, after: str | None, cancel: threading.Event | None = None
) -> Iterator[Page]:
    """The pages from `after`; once `cancel` is set, no request is sent or tried again."""
    seen_cursors = {after}
    while True:
        page = fetch_page(api, limit, after, cancel)
        if page.has_more and not page.items:
            raise ApiError(f"the API said has_more but sent an empty page (after={after}): scan truncated")
        yield page  # first: the caller may see that it cannot follow `after`, and walk elsewhere
        if not page.has_more:
            return
        after = page.last_id
        if after in seen_cursors:
            raise ApiError(f"the API's cursor did not move (after={after!r}): refusing to loop")
        seen_cursors.add(after)


def fetch_page(api: Api, limit: int, after: str | None, cancel: threading.Event | None = None) -> Page:
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    body, provider = request_json(api, "fine_tuning/jobs", params, cancel)
    data, has_more = body.get("data"), body.get("has_more")
    if body.get("object") != "list" or not isinstance(data, list) or not isinstance(has_more, bool | None):
        raise ApiError(
            "the API sent a page that is not a job list "
            "(expected object 'list', data a list, has_more a boolean)"
        )
    if has_more is None:  # Bedrock through the gateway: every request returns the first page
        # More may exist when the page is full, or when last_id is not the last job's id: it is then
        # Bedrock's nextToken, sent while more jobs exist, whatever page size the gateway dropped.
        token = body.get("last_id")
        more = len(data) >= limit or (token is not None and token != Page(data, False, after).last_id)
        return Page(data, False, after, provider, truncated=more)
    return Page(data, has_more, after, provider)


def fetch_job(api: Api, job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """One job by id, and who answered (x-portkey-provider, as Page.provider); the job is None
    when the API no longer knows it (404)."""
    try:
        body, provider = request_json(api, f"fine_tuning/jobs/{path_segment(job_id)}", {})
    except ApiError as e:
        if e.status == 404:
            return None, None
        raise
    if body.get("id") != job_id:
        raise ApiError(f"the API answered GET job {job_id} with another object")
    return body, provider


def path_segment(job_id: str) -> str:
    """The id as one path segment: '/', '?', '#' and dot segments cannot leave it. Percent-escapes
    already in an id are kept, since Bedrock's ids are URL-encoded ARNs meant to be sent as listed."""
    segment = quote(job_id, safe="%!$&'()*+,;=:@~")
    segment = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", segment)
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


class Retry(Exception):
    """A failure worth another attempt; `delay` is what the server asked for, if anything."""

    def __init__(self, message: str, delay: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.delay = delay
        self.status = status


def request_json(
    api: Api, path: str, params: dict[str, Any], cancel: threading.Event | None = None
) -> tuple[dict[str, Any], str | None]:
    """GET a JSON object, retrying transient failures with backoff; everything else is ApiError.
    The waits between tries end early once `cancel` (else `api.stopping`) is set."""
    return retrying(api, path, lambda: attempt_json(api, path, params), cancel)


def retrying(api: Api, path: str, attempt_once: Callable[[], T], cancel: threading.Event | None = None) -> T:
    """`attempt_once()` until it does not raise Retry: the retry policy of every request. A 429
    holds back every request of this Api (threads fetching at once) for the wait it asked for."""
    s = api.settings
    stop = cancel or api.stopping
    waited = 0.0  # the hold this call has waited out already
    for attempt in range(s.max_retries + 1):
        if stop.is_set() or api.stopping.is_set():
            raise ApiError(f"GET {path}: not sent, the walk is over")
        if api.hold_until > waited:
            waited = api.hold_until
            if waited > api.clock():
                (api.sleep or stop.wait)(waited - api.clock())
        try:
            return attempt_once()
        except Retry as e:
            if attempt == s.max_retries:
                raise ApiError(f"{e} (gave up after {attempt + 1} attempt{'s' if attempt else ''})") from None
            if e.delay is not None and e.delay > s.retry_after_cap:
                raise TryLater(
                    f"{e}; the API asked to wait {e.delay:.0f}s, more than the "
                    f"{s.retry_after_cap:.0f}s cap: try again later"
                ) from None
            delay = e.delay if e.delay is not None else backoff(s, attempt)
            if s.max_time is not None and api.clock() - api.started + delay > s.max_time:
                raise OutOfTime(f"{e}; out of time (--max-time {s.max_time:g}s)") from None
            if e.status == 429:  # before the log line, which lets the other threads run meanwhile
                api.hold_until = waited = max(api.hold_until, api.clock() + delay)
            log.warning("%s; retrying in %.2fs (attempt %d of %d)", e, delay, attempt + 2, s.max_retries + 1)
            (api.sleep or stop.wait)(delay)
    raise AssertionError("unreachable")


def backoff(s: Settings, attempt: int) -> float:
    """Full jitter: uniform(0, min(max, base * 2**attempt))."""
    return random.uniform(0, min(s.backoff_max, s.backoff_base * 2**attempt))


def attempt_json(api: Api, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    url = api.http.base_url.join(path)
    where = f"GET {url.copy_with(query=None)}"
    timeout: Any = httpx.USE_CLIENT_DEFAULT
    if api.settings.max_time is not None:  # a deadline for the whole run: no request may outlive it
        left = api.settings.max_time - (api.clock() - api.started)
        if left <= 0:
            raise OutOfTime(f"{where}: out of time (--max-time {api.settings.max_time:g}s)")
        timeout = httpx.Timeout(min(api.settings.timeout, left), connect=min(5.0, api.settings.timeout, left))
    with api.counting:
        api.requests += 1
    try:
        response = api.http.get(path, params=params, timeout=timeout)
    except httpx.TimeoutException:
        raise Retry(f"{where}: timed out") from None
    except httpx.ConnectError as e:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):  # permanent: retrying cannot help
            raise ApiError(
                f"{where}: the TLS certificate of {url.host} is not trusted ({reason(e)}); "
                "use --ca-bundle for a private CA"
            ) from None
        raise Retry(f"{where}: cannot connect to {url.host} ({reason(e)})") from None
    except (httpx.TransportError, httpx.DecodingError) as e:
        raise Retry(f"{where}: connection broke ({reason(e)})") from None
    secrets = [v for k, v in api.settings.headers.items() if k.lower() in SECRET_HEADERS]
    body = parse_response(response, where, secrets)
    return body, response.headers.get("x-portkey-provider")


# The headers that hold secrets; the provider's name and a custom host are no secret, and blanking
# them would garble an error message that names them.
SECRET_HEADERS = {"x-portkey-api-key", "x-portkey-virtual-key", "x-portkey-config", "authorization"}


def parse_response(r: httpx.Response, where: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    media_type = r.headers.get("content-type", "").split(";")[0].strip().lower()
    if 200 <= r.status_code < 300 and media_type == "text/html":  # a web page: the base URL is wrong
        raise ConfigError(f"{where}: this is not the Portkey API (got text/html); check PORTKEY_BASE_URL")
    should = r.headers.get("x-should-retry")
    if r.status_code >= 300 or r.status_code < 200:
        message = f"{where}: HTTP {r.status_code}{api_message(r, secrets)}"
        if should == "true" or (should != "false" and r.status_code in RETRY_STATUSES):
            raise Retry(message, retry_after(r), r.status_code)
        raise final_error(r, message)
    try:
        body = r.json()
    except ValueError:
        raise Retry(f"{where}: HTTP {r.status_code} but the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(f"{where}: expected a JSON object, got {type(body).__name__}")
    return body


def final_error(r: httpx.Response, message: str) -> ApiError | ConfigError:
    code = r.status_code
    if code in (401, 403):
        return AuthError(
            f"{message}: the credentials or routing headers were refused; check PORTKEY_API_KEY "
            "and PORTKEY_VIRTUAL_KEY / PORTKEY_PROVIDER (+ PORTKEY_PROVIDER_API_KEY) / PORTKEY_CONFIG"
        )
    if code == 404:
        if r.url.path.rstrip("/").endswith("/fine_tuning/jobs") and "after" not in r.url.params:
            return ConfigError(f"{message}: no fine-tuning jobs endpoint here; check PORTKEY_BASE_URL", 404)
        return ApiError(message, 404)
    if code == 412:
        return ApiError(f"{message}: Portkey budget exhausted", code)
    if 300 <= code < 400:
        return ApiError(f"{message}: redirects are not followed (they would carry the keys elsewhere)", code)
    return ApiError(message, code)


def api_message(r: httpx.Response, secrets: Iterable[str]) -> str:
    """The API's own error message, on one line and short, with any echo of our headers blanked out:
    OpenAI's {"error": {"message"}}, or the gateway's own {"status": "failure", "message"}."""
    try:
        body = r.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    msg = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
    if msg is None and isinstance(body, dict) and body.get("status") == "failure":
        msg = body.get("message")
    if not isinstance(msg, str) or not msg.strip():
        provider = r.headers.get("x-portkey-provider")
        return f" from {provider} with no error message" if provider else ""
    msg = redact_values(msg, [secret.removeprefix("Bearer ") for secret in secrets])
    return ": " + " ".join(msg.split())[:300]


def retry_after(r: httpx.Response) -> float | None:
    """Seconds the server asked to wait: retry-after-ms, then Retry-After seconds or HTTP date."""
    ms = r.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = r.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def reason(e: Exception) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
