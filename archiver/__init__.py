"""archiver: keep a complete, queryable history of fine-tuning jobs served through Portkey.

    import archiver
    archive = archiver.Archive("archive.db")  # a path or SQLAlchemy URL; read-only until a write is asked
    route = archiver.Portkey.from_env()           # or archiver.Portkey(api_key=..., virtual_key=..., ...)
    result = archive.sync(route, full=False)      # migrates, locks, records the run; returns the run summary
    rows = archive.report("monthly_activity", since="2026-01-01")   # list of dicts
    rows = archive.query("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    health = archive.status(max_age="2h")         # the same verdict as `archiver status`
    routes = [archiver.Route("openai", route), archiver.Route("azure", archiver.Portkey(...))]
    done = archive.sync(routes=routes)            # one after another; done.results, done.errors

The names below are the public API; everything else is internal. They load on first use, so that
`import archiver` (and `archiver --version`) stays cheap.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Archive",
    "ArchiverError",
    "AuthError",
    "ConfigError",
    "DatabaseError",
    "Health",
    "Interrupted",
    "Portkey",
    "RejectedItems",
    "Route",
    "RoutesResult",
    "SyncResult",
    "TryLater",
    "Unrefreshed",
    "__version__",
    "log_filter",
]

_HOMES = {
    "Archive": "archiver.archive",
    "Health": "archiver.health",
    "Portkey": "archiver.portkey",
    "Route": "archiver.routes",
    "RoutesResult": "archiver.runs",
    "SyncResult": "archiver.sync",
    "log_filter": "archiver.log",
    **dict.fromkeys(
        ("ApiError", "ArchiverError", "AuthError", "ConfigError", "DatabaseError", "Interrupted"),
        "archiver.errors",
    ),
    **dict.fromkeys(("RejectedItems", "TryLater", "Unrefreshed"), "archiver.errors"),
}

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.errors import (
        ApiError,
        ArchiverError,
        AuthError,
        ConfigError,
        DatabaseError,
        Interrupted,
        RejectedItems,
        TryLater,
        Unrefreshed,
    )
    from archiver.health import Health
    from archiver.log import log_filter
    from archiver.portkey import Portkey
    from archiver.routes import Route
    from archiver.runs import RoutesResult
    from archiver.sync import SyncResult


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'archiver' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
