"""A full walk in segments fetched at once, written by one thread (`sync --full --parallel N`)."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from archiver import ledger
from archiver.client import Page, walk_pages
from archiver.errors import ApiError
from archiver.ledger import Gap
from archiver.store import Batch, make_batch
from archiver.streams import Streams
from archiver.walks import REFUSED, Run, Walk, block, mark_missing_vanished, write

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
        return ledger.spaced_jobs(conn, run.parallel, run.limit)


def walk_parallel(run: Run, own: Gap, cuts: list[tuple[str, int | None]]) -> None:
    """A full walk as segments fetched at once, each starting after a job the archive knows and
    ending where the next begins, all written by this thread (a job two of them list is written
    once). A segment whose cursor is refused, or which the API lists from elsewhere, hands its
    part to the one before it. When every part was walked, this is a full walk that reached the
    end: every gap closes and what was not listed is marked vanished; otherwise the gaps stay as
    the segments left them, exactly as their walks would leave them one after the other."""
    starts: list[tuple[str, int | None] | None] = [None, *cuts]
    segments = [
        Segment(
            Walk("full", start[0] if start else None, [] if start else [own], started_at_head=not start),
            start,
            cuts[i][0] if i < len(cuts) else None,
        )
        for i, start in enumerate(starts)
    ]
    listed: dict[str, int] = {}  # job id -> the segment that wrote it
    streams: Streams[tuple[int, int]] = Streams(depth=2)
    try:
        for i, seg in enumerate(segments):
            streams.start((i, 0), segment_pages(run, seg.walk.after))
        while any(seg.state == "walking" for seg in segments):
            (i, _), ok, value = streams.get()
            seg = segments[i]
            fresh = seg.start if seg.pages == 0 else None  # where a segment that has no page yet starts
            if not ok and isinstance(value, ApiError) and value.status == 400 and (fresh or seg.pages):
                if fresh:
                    log.info("the API refused to page after %s; the segment before walks on", fresh[0])
                    hand_over(run, segments, i, streams)
                else:
                    seg.state = "blocked"
                    block(run, seg.walk, REFUSED.format(value), refused_now=True)
                continue
            if not ok:
                raise value if value is not None else AssertionError("a walk ended before its last page")
            page, batch = value
            if fresh and not lists_after(batch, fresh):
                log.info("the API did not list the jobs after %s; the segment before walks on", fresh[0])
                streams.stop((i, seg.stream))
                hand_over(run, segments, i, streams)
                continue
            _, canons = write(run, seg.walk, page, batch, skip=listed)
            seg.pages, seg.last_id = seg.pages + 1, page.last_id or seg.last_id
            if page.truncated:
                seg.state = "blocked"
            elif not page.has_more:
                seg.state = "end"
            elif any(c["id"] == seg.bound or listed.get(c["id"], i) > i for c in canons):
                seg.state = "bounded"
            for canon in canons:
                listed.setdefault(canon["id"], i)
            if seg.state != "walking":
                streams.stop((i, seg.stream))
    finally:
        streams.close()
    if all(seg.state in ("bounded", "end", "handed over") for seg in segments):
        with run.engine.begin() as conn:
            ledger.close_gaps(conn, [g.id for g in run.gaps if g.id is not None])
        run.gaps = []
        mark_missing_vanished(run, set(listed))


def segment_pages(run: Run, after: str | None) -> Iterator[tuple[Page, Batch]]:
    for page in walk_pages(run.api, run.limit, after):
        yield page, make_batch(page.items, run.notes, page.provider or run.provider)


def lists_after(batch: Batch, start: tuple[str, int | None]) -> bool:
    """Whether a segment's first page plausibly follows its start: some job, none newer than it."""
    created = [c["created_at"] for _, c in batch.jobs]
    return bool(created) and (start[1] is None or created[0] is None or created[0] <= start[1])


def hand_over(run: Run, segments: list[Segment], i: int, streams: Streams[tuple[int, int]]) -> None:
    """Segment i cannot walk its part: the segment before it walks on to i's bound, starting
    again from its last page if it had stopped at its own."""
    segments[i].state = "handed over"
    j = max(k for k in range(i) if segments[k].state != "handed over")
    prev = segments[j]
    prev.bound = segments[i].bound
    if prev.state == "bounded":
        prev.state, prev.stream = "walking", prev.stream + 1
        streams.start((j, prev.stream), segment_pages(run, prev.last_id))
