"""A full walk in segments fetched at once, written by one thread (`sync --full --parallel N`)."""

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from archiver import cursors, interrupts, ledger, listings
from archiver.client import Page, walk_pages
from archiver.errors import ApiError
from archiver.ledger import Gap
from archiver.store import Batch, make_batch
from archiver.streams import ABANDON_AFTER, Streams
from archiver.walks import Run, Walk, mark_missing_vanished, write

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Segment:
    """A part of a parallel full walk: the jobs after `start` (None: the head) up to the job
    `bound` (None: the end), or up to the first job a later segment has written (`bound` may have
    vanished). `stream` numbers its fetches: one more each time it walks on from `last_id` to take
    over the next segment's part."""

    walk: Walk
    start: tuple[str, int | None] | None
    bound: str | None
    state: str = "walking"  # then "bounded", "end" (of the listing), "handed over" or "blocked"
    stream: int = 0
    pages: int = 0
    last_id: str | None = None


def cut_points(run: Run) -> list[tuple[str, int | None]]:
    with run.engine.connect() as conn:
        return ledger.spaced_jobs(conn, run.parallel, run.limit, run.route)


def walk_parallel(run: Run, own: Gap, cuts: list[tuple[str, int | None]]) -> bool:
    """A full walk as segments fetched at once, each starting after a job the archive knows and
    ending where the next begins, all written by this thread (a job two of them list is written
    once; run_listings keeps which segment wrote it, archiver/listings.py). A segment whose cursor is
    refused, or which the API lists from elsewhere, hands its part to the one before it.

    Returns whether the segments walked the whole listing: then this was a full walk that reached
    the end, so every gap closes and what was not listed is marked vanished. If not (a cursor
    refused after a segment began), the gaps are as the segments' pages left them, as after any
    walks cut off there, and the caller walks the listing once from the head."""
    starts: list[tuple[str, int | None] | None] = [None, *cuts]
    segments = [
        Segment(
            Walk("full", s[0] if s else None, [] if s else [own], started_at_head=not s, listed=i, skip=True),
            s,
            cuts[i][0] if i < len(cuts) else None,
        )
        for i, s in enumerate(starts)
    ]
    walker = Walker(run, segments, Streams(depth=1))  # one page beyond a part, at most
    log.info("walking the history in %d segments at once", len(segments))
    try:
        for i, seg in enumerate(segments):
            walker.start(i, seg.walk.after)
        while any(seg.state == "walking" for seg in segments):
            (i, _), ok, value = walker.streams.get()
            walker.take_page(i, *value) if ok else walker.take_end(i, value)
    except BaseException:
        run.api.stopping.set()  # fetches waiting to retry give up: the run is ending
        raise
    finally:  # an ending run (a signal, a failure) does not wait out a slow request
        walker.streams.close(ABANDON_AFTER if run.api.stopping.is_set() else None)
    if not all(seg.state in ("bounded", "end", "handed over") for seg in segments):
        return False
    with interrupts.deferred(), run.engine.begin() as conn:
        ledger.close_gaps(conn, [g.id for g in run.gaps if g.id is not None])
    run.gaps = []
    mark_missing_vanished(run, listings.SEGMENTS)
    return True


@dataclass
class Walker:
    """The writer's side of a parallel walk: what each segment's next page or end means."""

    run: Run
    segments: list[Segment]
    streams: Streams[tuple[int, int]]

    def start(self, i: int, after: str | None) -> None:
        """Segment i's fetches from `after`; stopping its stream ends a wait to retry at once."""
        stop = threading.Event()
        self.streams.start((i, self.segments[i].stream), segment_pages(self.run, after, stop), stop)

    def take_page(self, i: int, page: Page, batch: Batch) -> None:
        seg = self.segments[i]
        if seg.pages == 0 and seg.start and not lists_after(batch, seg.start):
            log.info("the API did not list the jobs after %s; the segment before walks on", seg.start[0])
            self.streams.stop((i, seg.stream))
            self.hand_over(i)
            return
        if seg.pages and not self.follows(seg, page, batch):
            log.info("the page after %s cannot follow it; the listing is walked from the head", page.after)
            seg.state = "blocked"
            self.streams.stop((i, seg.stream))
            return
        _, canons = write(self.run, seg.walk, page, batch)
        seg.pages, seg.last_id = seg.pages + 1, page.last_id or seg.last_id
        if page.truncated:
            seg.state = "blocked"
        elif not page.has_more:
            seg.state = "end"
        elif any(c["id"] == seg.bound or seg.walk.writers.get(c["id"], i) > i for c in canons):
            seg.state = "bounded"
        if seg.state != "walking":
            self.streams.stop((i, seg.stream))

    def follows(self, seg: Segment, page: Page, batch: Batch) -> bool:
        """Whether a later page of a segment plausibly follows its cursor (as the first page must
        follow its start), or else the cursor's job is still in place: an empty page or the first
        page again is how some APIs answer a cursor purged between two pages."""
        cursor = (page.after or "", seg.walk.cursor_created)
        return lists_after(batch, cursor) or bool(
            page.after and cursors.in_place(self.run, page.after, seg.walk.cursor_created)
        )

    def take_end(self, i: int, error: BaseException | None) -> None:
        """A segment's fetches ended in `error` (a walk that reaches the end ends with a page)."""
        seg = self.segments[i]
        refused = isinstance(error, ApiError) and error.status in (400, 404)
        if not refused or (seg.start is None and seg.pages == 0):
            raise error or AssertionError("a walk ended before its last page")
        if seg.start and seg.pages == 0:
            log.info("the API refused to page after %s; the segment before walks on", seg.start[0])
            self.hand_over(i)
            return
        log.info("the API refused to page on after %s (%s)", seg.last_id, error)
        seg.state = "blocked"

    def hand_over(self, i: int) -> None:
        """Segment i cannot walk its part: the segment before it walks on to i's bound, starting
        again from its last page if it had stopped at its own."""
        self.segments[i].state = "handed over"
        j = max(k for k in range(i) if self.segments[k].state != "handed over")
        prev = self.segments[j]
        prev.bound = self.segments[i].bound
        if prev.state == "bounded":
            prev.state, prev.stream = "walking", prev.stream + 1
            self.start(j, prev.last_id)


def segment_pages(run: Run, after: str | None, stop: threading.Event) -> Iterator[tuple[Page, Batch]]:
    for page in walk_pages(run.api, run.limit, after, stop):
        yield page, make_batch(page.items, run.notes, page.provider or run.provider)


def lists_after(batch: Batch, start: tuple[str, int | None]) -> bool:
    """Whether a segment's first page plausibly follows its start: some job, none newer than it."""
    created = [c["created_at"] for _, c in batch.jobs]
    return bool(created) and (start[1] is None or created[0] is None or created[0] <= start[1])
