"""A fake of Portkey's fine-tuning jobs API and a generator of realistic histories for it.

Real paging, header checks, faults and a request log. The same fake answers an httpx.MockTransport
(client and sync tests) and a real HTTP server on 127.0.0.1 (CLI tests, `archiver demo`), so both
see identical behaviour; generate.py makes the histories it serves (tests/fake_api.py re-exports both).
"""

import json
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

API_KEY = "pk-test-key-3f9a"
VIRTUAL_KEY = "vk-test-openai-77c1"
AUTH_HEADERS = {"x-portkey-api-key": API_KEY, "x-portkey-virtual-key": VIRTUAL_KEY}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # "drop" the connection, "truncate" the body, "slow" past the timeout


def json_reply(status: int, obj: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"content-type": "application/json", **headers})


def error_reply(status: int, message: str, **headers: str) -> Reply:
    return json_reply(status, {"error": {"message": message, "type": "invalid_request_error"}}, **headers)


HTML = b"<html><body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>"
FAULTS = {
    "500": lambda: error_reply(500, "Internal server error"),
    "502": lambda: Reply(502, HTML, {"content-type": "text/html"}),
    "503": lambda: error_reply(503, "Service Unavailable"),
    "504": lambda: error_reply(504, "Gateway timeout"),
    "429": lambda: error_reply(429, "Rate limit reached", **{"retry-after": "0"}),
    "html200": lambda: Reply(200, HTML, {"content-type": "text/html"}),
    "drop": lambda: Reply(200, action="drop"),
    "truncate": lambda: Reply(
        200,
        b'{"object": "list", "data": [], "has_more": false}',
        {"content-type": "application/json"},
        "truncate",
    ),
    "slow": lambda: Reply(200, b"{}", {"content-type": "application/json"}, "slow"),
}


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeApi:
    """Jobs newest first, as the real API lists them; `faults` are consumed one per request."""

    def __init__(self, jobs: list[dict[str, Any]] | None = None, *, max_limit: int | None = None) -> None:
        self.jobs = list(jobs or [])
        self.max_limit = max_limit  # servers may clamp the page size
        self.provider: str | None = None  # sent as x-portkey-provider, as the gateway does
        self.required = dict(AUTH_HEADERS)
        self.faults: deque[Reply | None] = deque()  # None: answer normally
        self.delay = 0.0  # added to every list page
        self.outage_after: int | None = None  # list pages served before every request gets 503
        self.pages_served = 0
        self.slow_seconds = 2.0
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.fault_rate = 0.0  # chance that a request gets one of `fault_kinds`
        self.fault_kinds: tuple[str, ...] = tuple(FAULTS)
        self.rng = random.Random(0)
        self.injected: list[str] = []
        self.odd: dict[str, dict[str, Any]] = {}  # id -> fields served wrongly typed over the job's own
        # Personalities of real servers:
        self.unknown_cursor = "400"  # how `after=<id it does not list>` is answered: 400, 404, empty, first
        self.get_faults: dict[str, deque[Reply]] = {}  # id -> replies its next GETs get, one each
        # The single-job GET's body text for a job, when the route serves it otherwise than the
        # list does (the gateway re-serializes it, renames Azure's statuses, ...); None: as listed.
        self.retrieved: Callable[[dict[str, Any]], str] | None = None
        # A job's details (archiver/fake_details.py fills them): OpenAI's shapes, events newest first.
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.events: dict[str, list[Any]] = {}
        self.checkpoints: dict[str, list[Any]] = {}
        self.detail_delay = 0.0  # added to every request for a detail
        self.detail_max_limit: int | None = None  # the most events or checkpoints a page holds
        self.broken: dict[str, Reply] = {}  # path -> the reply every request for it gets

    def served(self, job: Any) -> Any:
        return {**job, **self.odd[job["id"]]} if isinstance(job, dict) and job.get("id") in self.odd else job

    def list_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/fine_tuning/jobs")]

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append(Seen(path, params, headers))
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.fault_rate and self.rng.random() < self.fault_rate:
                kind = self.rng.choice(self.fault_kinds)
                self.injected.append(kind)
                fault = FAULTS[kind]()
        if fault is not None:
            return fault
        for name, value in self.required.items():
            if headers.get(name) != value:
                return error_reply(401, f"Invalid or missing {name}")
        parts = path.rstrip("/").split("/")
        if self.outage_after is not None and self.pages_served >= self.outage_after:
            return error_reply(503, "Service Unavailable")
        if parts[-2:] == ["fine_tuning", "jobs"]:
            if self.delay:
                time.sleep(self.delay)
            with self.lock:  # walks in parallel ask at once
                self.pages_served += 1
            return self.list_page(params)
        if parts[-3:-1] == ["fine_tuning", "jobs"]:
            return self.one_job(unquote(parts[-1]))
        if self.detail_delay:
            time.sleep(self.detail_delay)
        if path in self.broken:
            return self.broken[path]
        return self.detail(parts, params)

    def detail(self, parts: list[str], params: dict[str, str]) -> Reply:
        """Files, their contents, and a job's events and checkpoints, as OpenAI serves them."""
        if parts[-2:-1] == ["files"] and unquote(parts[-1]) in self.files:
            return json_reply(200, self.files[unquote(parts[-1])])
        if parts[-3:-2] == ["files"] and parts[-1] == "content" and unquote(parts[-2]) in self.contents:
            body = self.contents[unquote(parts[-2])]
            return Reply(200, body, {"content-type": "application/octet-stream"})
        if parts[-4:-2] == ["fine_tuning", "jobs"] and parts[-1] in ("events", "checkpoints"):
            job_id = unquote(parts[-2])
            if not any(isinstance(j, dict) and j.get("id") == job_id for j in self.jobs):
                return error_reply(404, f"No fine-tuning job found with id {job_id}")
            items = (self.events if parts[-1] == "events" else self.checkpoints).get(job_id, [])
            return self.detail_page(items, params, 20 if parts[-1] == "events" else 10)
        return error_reply(404, "Not found")

    def detail_page(self, items: list[Any], params: dict[str, str], default: int) -> Reply:
        limit = min(int(params.get("limit", default)), self.detail_max_limit or 10**9)
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        start = ids.index(params["after"]) + 1 if "after" in params and params["after"] in ids else 0
        data = items[start : start + limit]
        page = {"object": "list", "data": data, "has_more": start + limit < len(items)}
        if data:
            page |= {"first_id": ids[start], "last_id": ids[start + len(data) - 1]}
        return json_reply(200, page)

    def list_page(self, params: dict[str, str]) -> Reply:
        try:
            limit = int(params.get("limit", 20))
        except ValueError:
            return error_reply(400, "limit must be an integer")
        if self.max_limit:
            limit = min(limit, self.max_limit)
        start = 0
        if "after" in params:
            ids = [j.get("id") if isinstance(j, dict) else None for j in self.jobs]
            if params["after"] not in ids:
                if self.unknown_cursor in ("400", "404"):
                    message = f"No fine-tuning job found with id {params['after']}"
                    return error_reply(int(self.unknown_cursor), message)
                start = len(self.jobs) if self.unknown_cursor == "empty" else 0  # or the first page again
            else:
                start = ids.index(params["after"]) + 1
        data = [self.served(job) for job in self.jobs[start : start + limit]]
        page = {"object": "list", "data": data, "has_more": start + limit < len(self.jobs)}
        return json_reply(200, page, **self.answered_by())

    def one_job(self, job_id: str) -> Reply:
        with self.lock:
            faults = self.get_faults.get(job_id)
            fault = faults.popleft() if faults else None
        if fault is not None:
            return fault
        for job in self.jobs:
            if isinstance(job, dict) and job.get("id") == job_id:
                if self.retrieved is None:
                    return json_reply(200, self.served(job), **self.answered_by())
                headers = {"content-type": "application/json", **self.answered_by()}
                return Reply(200, self.retrieved(self.served(job)).encode(), headers)
        return error_reply(404, f"No fine-tuning job found with id {job_id}")

    def answered_by(self) -> dict[str, str]:
        return {"x-portkey-provider": self.provider} if self.provider else {}

    # httpx.MockTransport handler
    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        path = request.url.raw_path.decode().partition("?")[0]  # as sent: %2F stays inside its segment
        reply = self.respond(path, params, {k.lower(): v for k, v in request.headers.items()})
        if reply.action == "drop":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if reply.action == "truncate":
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        if reply.action == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)


class Handler(BaseHTTPRequestHandler):
    fake: FakeApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the body follows the headers at once, not after a delayed ACK

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake.respond(url.path, params, headers)  # type: ignore[attr-defined]
        if reply.action == "drop":
            self.close_connection = True
            return
        if reply.action == "slow":
            time.sleep(self.server.fake.slow_seconds)  # type: ignore[attr-defined]
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        body = reply.body
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if reply.action == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-response is what some tests do on purpose


@contextmanager
def serve(fake: FakeApi, tls: ssl.SSLContext | None = None, port: int = 0) -> Iterator[str]:
    """Serve the fake on 127.0.0.1 (`port`, or any free one) in a thread; yields the base URL
    (ending in /v1)."""
    server = Server(("127.0.0.1", port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
