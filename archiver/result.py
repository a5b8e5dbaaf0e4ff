"""SyncResult: what one run did, counted as its pages commit."""

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archiver.checkpoints import Mark
    from archiver.details import DetailsResult


@dataclass
class SyncResult:
    """What one run did: its counters (as its pages commit), why coverage is partial, if it is,
    and the schema revision it migrated from, if it did."""

    run_id: int
    mode: str
    pages: int = 0
    requests: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    vanished: int = 0
    partial: str | None = None  # why part of the history is unreachable through this route
    migrated_from: str | None = None  # the schema revision before this run migrated it, if it did
    unrefreshed: dict[str, str] = field(default_factory=dict)  # in-flight jobs whose GET failed: why
    details: "DetailsResult | None" = None  # what the run did for the details of final jobs
    checkpoint: "Mark | None" = None  # the audit chain's head once the run's row was linked
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def counters(self) -> dict[str, int]:
        """The counters as sync_runs stores them (column -> value)."""
        return {
            "pages": self.pages,
            "requests": self.requests,
            "jobs_seen": self.seen,
            "jobs_inserted": self.inserted,
            "jobs_updated": self.updated,
            "jobs_unchanged": self.unchanged,
            "jobs_rejected": self.rejected,
        }
