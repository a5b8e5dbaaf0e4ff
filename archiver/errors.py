"""Errors a user can act on, each with its exit code.

    ArchiverError                 1  operational failure, archive intact
    ├── ConfigError               2  bad option, missing setting, schema not migrated
    │   └── AuthError             2  credentials or routing headers refused (401/403)
    ├── ApiError                  1  the API failed or answered nonsense (after retries)
    ├── DatabaseError             4  archive locked, full, read-only or unreachable
    ├── RejectedItems             3  run completed, some items quarantined
    ├── Unrefreshed               5  run completed, some in-flight jobs could not be refreshed
    └── TryLater                 75  another sync holds the lock, or the API asked to wait too long

`archiver verify` exits 6 when the archive fails verification (a verdict, not an error).
Signals are not errors: SIGINT exits 130 and SIGTERM 143 (see archiver/cli/main.py).
Anything else is a bug and keeps its traceback.
"""

import math


class ArchiverError(Exception):
    """A failure explained in one line written for the user."""

    exit_code = 1


class ConfigError(ArchiverError):
    exit_code = 2

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status behind it, if any


def require_whole(name: str, value: object, low: int, high: int) -> None:
    """Refuse (ConfigError) anything but a whole number from `low` to `high`."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def require_seconds(name: str, value: object, least: float) -> None:
    """Refuse (ConfigError) anything but a finite number of seconds from `least`."""
    if not isinstance(value, int | float) or not least <= value < math.inf:
        raise ConfigError(f"{name} must be a number of seconds from {least:g}, not {value!r}")


class AuthError(ConfigError):
    pass


class ApiError(ArchiverError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OutOfTime(ApiError):
    """The run's --max-time is spent."""


class DatabaseError(ArchiverError):
    exit_code = 4


class RejectedItems(ArchiverError):
    exit_code = 3


class Unrefreshed(ArchiverError):
    """Everything else was done; these jobs keep what was last seen and are asked again later."""

    exit_code = 5


class TryLater(ArchiverError):
    exit_code = 75


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; the current page is rolled back and the run recorded."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
