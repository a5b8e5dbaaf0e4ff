"""Several routes synced one after another under the archive's one run lock, each run on its own.

One after another, not at once: an archive has one writer anyway (SQLite has one, and the run lock
is the archive's), sequential runs keep memory and each gateway's request rate what one run makes,
and a no-op run costs one request per route. A route that fails (its API, its credentials, a
refused cursor: its run is recorded `failed`) does not stop the routes after it; a database error
or a signal does, since it is the archive's, not the route's.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from archiver.client import make_api
from archiver.errors import ArchiverError, ConfigError, DatabaseError, require_seconds, require_whole
from archiver.portkey import Portkey
from archiver.routes import DEFAULT, Route
from archiver.sync import SyncResult, sync

log = logging.getLogger(__name__)

# Exit codes, the worst first: the one a run over several routes exits with.
WORST_FIRST = (4, 2, 1, 75, 5, 3)


@dataclass
class RoutesResult:
    """What `Archive.sync(routes=...)` did: each route's SyncResult, or the error that ended it."""

    results: dict[str, SyncResult] = field(default_factory=dict)  # the routes whose run completed
    errors: dict[str, ArchiverError] = field(default_factory=dict)  # the routes whose run failed: why
    migrated_from: str | None = None  # the schema revision before this sync migrated it, if it did

    @property
    def ok(self) -> bool:
        return not self.errors

    def worst(self) -> ArchiverError | None:
        """The error with the worst exit code (WORST_FIRST), the first route's on a tie; None when
        every route completed. Raises nothing."""
        return worst(list(self.errors.values()))


def worst(errors: list[ArchiverError]) -> ArchiverError | None:
    rank = {code: i for i, code in enumerate(WORST_FIRST)}
    return min(errors, key=lambda e: rank.get(e.exit_code, len(rank)), default=None)


def check_sizes(
    page_size: int,
    parallel: int,
    max_retries: int,
    details_concurrency: int,
    details_max_jobs: int | None,
    details_max_bytes: int,
) -> None:
    """Refuse (ConfigError) an out-of-range count of Archive.sync, by its name."""
    for name, value, low, high in (
        ("page_size", page_size, 1, 10_000),
        ("parallel", parallel, 1, 32),
        ("max_retries", max_retries, 0, 20),
        ("details_concurrency", details_concurrency, 1, 32),
        ("details_max_jobs", 1 if details_max_jobs is None else details_max_jobs, 1, 10**9),
        ("details_max_bytes", details_max_bytes, 1, 2**40),
    ):
        require_whole(name, value, low, high)


def retry_policy(
    timeout: float, max_retries: int, retry_after_cap: float, retry_backoff: float, max_time: float | None
) -> dict[str, Any]:
    """Settings' retry and time fields, each checked (ConfigError naming Archive.sync's argument)."""
    for name, seconds, least in (
        ("timeout", timeout, 0.1),
        ("retry_after_cap", retry_after_cap, 0.0),
        ("retry_backoff", retry_backoff, 0.0),
        ("max_time", 1.0 if max_time is None else max_time, 1.0),
    ):
        require_seconds(name, seconds, least)
    policy = {"timeout": timeout, "max_retries": max_retries, "retry_after_cap": retry_after_cap}
    return policy | {"backoff_base": retry_backoff, "max_time": max_time}


def chosen_routes(route: Portkey | Route | None, routes: Sequence[Route] | None) -> list[Route]:
    """Archive.sync's one route (a Portkey is the route `default`) or its routes, each named once."""
    if (route is None) == (routes is None):
        raise ConfigError("give Archive.sync one route, or routes=[...]")
    if routes is None:
        return [route if isinstance(route, Route) else Route(DEFAULT, route)]  # type: ignore[arg-type]
    if not routes or len({r.name for r in routes}) < len(routes):
        raise ConfigError("routes= must name each route once, and at least one")
    return list(routes)


def sync_routes(
    engine: Engine,
    routes: list[Route],
    policy: dict[str, Any],
    options: dict[str, Any],
    *,
    stop_at_error: bool = False,
    on_route: Callable[[str], None] | None = None,
) -> RoutesResult:
    """Run sync() for each route in turn (the caller holds the run lock); `policy`: Settings' retry
    and time fields; `options`: sync()'s. A route's ArchiverError is kept in the result and the next
    route runs, unless `stop_at_error`; a DatabaseError, a signal or a bug ends them all."""
    done = RoutesResult()
    for route in routes:
        if on_route:
            on_route(route.name)
        try:
            with make_api(route.portkey.settings(**policy)) as api:
                provider = route.portkey.provider_name
                done.results[route.name] = sync(api, engine, provider=provider, route=route.name, **options)
        except DatabaseError:
            raise
        except ArchiverError as e:
            if stop_at_error:
                raise
            log.error("route %s failed: %s", route.name, e)
            done.errors[route.name] = e
    return done
