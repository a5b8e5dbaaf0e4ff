"""A job's details over HTTP: its events, checkpoints, files and file contents, with client.py's retries."""

import threading
from dataclasses import dataclass
from typing import Any

import httpx

from archiver.client import Api, Retry, parse_response, path_segment, reason, request_json, retrying
from archiver.errors import ApiError

EVENTS_LIMIT = 100  # events per page asked for (the API's default is 20)
CHECKPOINTS_LIMIT = 100


@dataclass(frozen=True)
class Content:
    """A file's bytes as received; `body` None when it is larger than the cap (`size`: what was
    announced or read before giving up)."""

    body: bytes | None
    size: int
    content_type: str | None


def fetch_list(api: Api, path: str, limit: int, cancel: threading.Event | None = None) -> list[Any] | None:
    """Every item of a paged list (events, checkpoints), following `after=<last id>` while
    has_more; None when the API does not know the job (404). A page that is not a list, or a
    cursor that does not move, is an ApiError."""
    items: list[Any] = []
    params: dict[str, Any] = {"limit": limit}
    seen: set[str] = set()
    while True:
        try:
            body, _ = request_json(api, path, params, cancel)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        data, has_more = body.get("data"), body.get("has_more", False)
        if not isinstance(data, list) or not isinstance(has_more, bool):
            raise ApiError(f"GET {path}: not a list (expected data a list, has_more a boolean)")
        items += data
        if not has_more:
            return items
        last = next((i.get("id") for i in reversed(data) if isinstance(i, dict) and i.get("id")), None)
        if not isinstance(last, str) or last in seen:
            raise ApiError(f"GET {path}: has_more but the cursor does not move (after={last!r})")
        seen.add(last)
        params = {"limit": limit, "after": last}


def events_path(job_id: str) -> str:
    return f"fine_tuning/jobs/{path_segment(job_id)}/events"


def checkpoints_path(job_id: str) -> str:
    return f"fine_tuning/jobs/{path_segment(job_id)}/checkpoints"


def fetch_file(api: Api, file_id: str, cancel: threading.Event | None = None) -> dict[str, Any] | None:
    """A file's metadata; None when the API no longer knows it (404)."""
    try:
        body, _ = request_json(api, f"files/{path_segment(file_id)}", {}, cancel)
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return body


def fetch_content(
    api: Api, file_id: str, max_bytes: int, cancel: threading.Event | None = None
) -> Content | None:
    """A file's bytes, read in chunks and given up past `max_bytes`; None on 404."""
    path = f"files/{path_segment(file_id)}/content"
    try:
        return retrying(api, path, lambda: attempt_content(api, path, max_bytes), cancel)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def attempt_content(api: Api, path: str, max_bytes: int) -> Content:
    url = api.http.base_url.join(path)
    where = f"GET {url.copy_with(query=None)}"
    with api.counting:
        api.requests += 1
    try:
        with api.http.stream("GET", path) as r:
            if not 200 <= r.status_code < 300:
                r.read()
                parse_response(r, where, api.settings.headers.values())  # raises Retry or the error
            kind = r.headers.get("content-type")
            announced = int(r.headers.get("content-length") or 0)
            if announced > max_bytes:
                return Content(None, announced, kind)
            chunks, size = [], 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return Content(None, size, kind)
                chunks.append(chunk)
            return Content(b"".join(chunks), size, kind)
    except httpx.TimeoutException:
        raise Retry(f"{where}: timed out") from None
    except httpx.ConnectError as e:
        raise Retry(f"{where}: cannot connect to {url.host} ({reason(e)})") from None
    except (httpx.TransportError, httpx.DecodingError) as e:
        raise Retry(f"{where}: connection broke ({reason(e)})") from None
