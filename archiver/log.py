"""Logging for archiver: one redaction filter for every secret, and the CLI's stderr handler."""

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable

STAMP = "%Y-%m-%dT%H:%M:%SZ "
BEARER = re.compile(r"(?i)bearer\s+\S+")


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret replaced by [redacted]: one of 8 characters or more wherever it
    occurs, a shorter one only as a whole token ("x" must not garble "x-portkey-api-key")."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
        elif secret:
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "[redacted]", text)
    return text


class RedactSecrets(logging.Filter):
    """Replaces the literal secret values in every record, whichever logger emitted it. Portkey(...)
    and database URLs with a password add theirs to `redact` as they are made."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def __call__(self, text: str) -> str:
        return BEARER.sub("Bearer [redacted]", redact_values(text, self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self(record.getMessage()), None
        return True


redact = RedactSecrets()


def log_filter() -> logging.Filter:
    """The redaction filter, for a library user's own log handlers: `handler.addFilter(log_filter())`."""
    return redact


class UtcFormatter(logging.Formatter):
    """Starts each line with the record's UTC time when `stamps()` says so."""

    def __init__(self, stamps: Callable[[], bool]) -> None:
        super().__init__("%(asctime)s%(levelname)s %(name)s: %(message)s")
        self.stamps = stamps

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(STAMP, time.gmtime(record.created)) if self.stamps() else ""


def stamps_on(mode: str) -> bool:
    """--timestamps auto (the default): when stderr is not a terminal (a log file, cron mail)."""
    return mode == "always" or (mode == "auto" and not sys.stderr.isatty())


def setup(verbose: int, stamps: Callable[[], bool]) -> None:
    """One redacting stderr handler on the root logger: WARNING, -v INFO, -vv DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redact)
    handler.setFormatter(UtcFormatter(stamps))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "archiver", False)]
    handler.archiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
