"""`archiver verify`: recompute the audit chain (archiver/chain.py) and check the archive against it.

Checked, each kind of failure reported once (its first case) with how many there are:

    gap         a seq missing, repeated or out of order (a link deleted, inserted or moved)
    link        a record whose "prev" is not the previous link's hash
    hash        a link whose hash is not the SHA-256 of its record
    record      a record that no longer says what its row's columns say (job_history.raw included)
    unchained   an ended run, a history row or a details record outside the chain
    current     a job's row (jobs and its child tables) that is not what its newest history row
                says, a job's details that are not what its newest details record says, or
                a job's job_metric_summary row that is not what its metric rows sum up to
    head        chain_head that is not the chain's newest link (links deleted at the end)
    checkpoint  a checkpoint (kept elsewhere) that the chain does not contain, or that goes backwards
    signature   a checkpoint not signed by the given public key

Streams every table in id order: memory stays flat whatever the archive's size.
"""

import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, Table, func, inspect, select, true
from sqlalchemy.exc import DBAPIError

from archiver import chain, checkpoints, db, detail_store, reports, verify_split
from archiver.detail_models import job_details as details_state
from archiver.detail_models import job_metric_summary
from archiver.errors import ArchiverError
from archiver.models import detail_history, job_history, sync_runs, verify_runs
from archiver.verify_jobs import check_jobs, parse, short
from archiver.verify_split import fast_reads

log = logging.getLogger(__name__)

JSONObj = dict[str, Any]
STREAMS: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (job_history, chain.HISTORY_FIELDS),
    (sync_runs, chain.RUN_FIELDS),
    (detail_history, chain.DETAIL_FIELDS),
)
KINDS = ("gap", "link", "hash", "record", "unchained", "current", "head", "checkpoint", "signature")


@dataclass
class Verdict:
    rows: int = 0  # links checked
    last_seq: int = 0
    last_hash: str = chain.GENESIS
    jobs: int = 0  # job rows checked against their newest history row
    details: int = 0  # jobs whose details were checked
    checkpoints: int = 0  # checkpoint lines read
    anchored_seq: int = 0  # the newest link a matching checkpoint vouches for
    signed: bool = False  # checkpoints' signatures were checked
    first: dict[str, str] = field(default_factory=dict)  # kind -> its first failure, one line
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.first

    @property
    def unanchored(self) -> int:
        """Links after the last checkpoint kept elsewhere: protected by nothing yet."""
        return self.last_seq - self.anchored_seq

    def fail(self, kind: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.first.setdefault(kind, message)

    def merge(self, other: "Verdict") -> None:
        """Add the failures of a check made elsewhere (its firsts win: it ran first)."""
        self.jobs += other.jobs
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        self.first.update(other.first)

    def as_dict(self) -> JSONObj:
        return {
            "intact": self.intact,
            **{
                k: getattr(self, k)
                for k in ("rows", "last_seq", "last_hash", "jobs", "details", "checkpoints")
            },
            **{k: getattr(self, k) for k in ("anchored_seq", "unanchored", "signed")},
            "failures": [
                {"kind": k, "count": self.counts[k], "first": self.first[k]} for k in KINDS if k in self.first
            ],
        }


def check_archive(
    read: Engine,
    write: Engine,
    log: Path | None,
    public_key: Path | None,
    progress: Callable[[Verdict], None] | None,
) -> Verdict:
    """`verify` in one snapshot of the archive; the verdict is then recorded in verify_runs
    unless the archive is read-only (it is printed only)."""
    with read.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot, while a sync may be writing
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            db.ensure_archive(conn)
            verdict = verify(conn, log, public_key, progress, write.url)
    try:
        with write.begin() as conn:
            record(conn, verdict)
    except (ArchiverError, DBAPIError) as e:
        logging.getLogger(__name__).info("verify's verdict is not recorded: %s", e)
    return verdict


def verify(
    conn: Connection,
    checkpoint_log: Path | None = None,
    public_key: Path | None = None,
    progress: Callable[[Verdict], None] | None = None,
    url: URL | None = None,
) -> Verdict:
    """Check the whole archive (see the module docstring). With the archive's `url`, a large
    archive's current rows are checked in a second process meanwhile (archiver/verify_split.py)."""
    return fast_reads(conn, lambda: check_all(conn, checkpoint_log, public_key, progress, url))


def check_all(
    conn: Connection,
    checkpoint_log: Path | None,
    public_key: Path | None,
    progress: Callable[[Verdict], None] | None,
    url: URL | None,
) -> Verdict:
    v = Verdict(signed=public_key is not None)
    if chain.head(conn) is None:
        v.fail("head", "the archive has no audit chain (migrate it: archiver db upgrade)")
        return v
    marks = checkpoints.read(checkpoint_log, public_key, v.fail) if checkpoint_log else []
    v.checkpoints = len(marks)
    started = time.monotonic()
    helper = verify_split.start(conn, url) if url is not None else None
    try:
        check_links(conn, v, {m.seq: m for m in marks}, progress)
        current = verify_split.finish(helper) if helper else None
    except BaseException:
        if helper:  # the check failed or was interrupted: end the second process too
            verify_split.stop(helper)
        raise
    if current is None:
        check_jobs(conn, v)
    else:
        v.merge(current)
    check_details(conn, v)
    log.info("verified %d links in %.1f s", v.rows, time.monotonic() - started)
    return v


def check_links(
    conn: Connection, v: Verdict, wanted: dict[int, Any], progress: Callable[[Verdict], None] | None
) -> None:
    """The chain, the checkpoints against it, its head, and the rows outside it."""
    for seq, table, record, digest, keys, row in links(conn):
        check_link(v, seq, table, record, digest, keys, row)
        mark = wanted.get(seq)
        if mark is not None:
            if mark.hash == digest:
                v.anchored_seq = max(v.anchored_seq, seq)
            else:
                v.fail(
                    "checkpoint",
                    f"seq {seq}: the checkpoint of {mark.at} says {mark.hash[:16]}..., "
                    f"the chain {digest[:16]}...",
                )
        if progress and v.rows % 100_000 == 0:
            progress(v)
    for seq in sorted(s for s in wanted if s > v.last_seq):
        v.fail(
            "checkpoint",
            f"seq {seq}: a checkpoint ({wanted[seq].at}) lies beyond the chain's end at seq {v.last_seq}"
            " (links removed?)",
        )
    check_head(conn, v)
    check_unchained(conn, v)


def links(conn: Connection) -> Iterator[tuple[int, str, str, str, list[str], Sequence[Any]]]:
    """Every link of the three tables, merged by seq (each table in id order, as written), as
    (seq, table, record, hash, the names of its fields, the row: the fields from its 4th value)."""
    streams = []
    for table, fields in STREAMS:
        columns = [table.c[k] for k in fields]
        if table is job_history:
            columns.append(chain.history_raw().label("raw"))
        query = select(table.c.seq, table.c.record, table.c.hash, *columns).where(table.c.seq.is_not(None))
        result = conn.execution_options(yield_per=5000).execute(query.order_by(table.c.id))
        streams.append(named(table.name, [c.key for c in columns], result))
    yield from heapq.merge(*streams)  # by seq, the first of each


def named(
    name: str, keys: list[str], rows: Iterable[Sequence[Any]]
) -> Iterator[tuple[int, str, str, str, list[str], Sequence[Any]]]:
    return ((r[0], name, r[1], r[2], keys, r) for r in rows)


def check_link(
    v: Verdict, seq: int, table: str, record: str, digest: str, keys: list[str], row: Sequence[Any]
) -> None:
    v.rows += 1
    if seq != v.last_seq + 1:
        what = (
            f"seq {v.last_seq + 1} to {seq - 1} missing"
            if seq > v.last_seq
            else f"seq {seq} after {v.last_seq}"
        )
        v.fail("gap", f"seq {seq} ({table}): {what}")
    if chain.sha256(record) != digest:
        v.fail("hash", f"seq {seq} ({table}): the hash is not the SHA-256 of the record")
    said = parse(record)
    if type(said) is not dict:  # JSON, but not an object: says nothing (its hash fails already)
        said = {}
    if said.get("prev") != v.last_hash:
        v.fail("link", f"seq {seq} ({table}): its prev is not the hash of seq {v.last_seq}")
    wrong = differs(table, seq, said, zip(keys, row[3:], strict=True))
    if wrong:
        v.fail("record", f"seq {seq} ({table}): {wrong}")
    v.last_seq, v.last_hash = max(seq, v.last_seq), digest


def differs(table: str, seq: int, said: JSONObj, fields: Iterable[tuple[str, Any]]) -> str | None:
    """What of the row (its chained fields, a job's JSON text as `raw`) its record does not say;
    None when they agree."""
    if said.get("table") != table or said.get("seq") != seq:
        return "the record is of another link"
    for k, value in fields:
        if k == "raw":
            if value is None:  # its own raw is NULL and no row of jobs holds it
                return "raw_sha256: its JSON is missing (neither it nor a row of jobs holds it)"
            k, value = "raw_sha256", chain.sha256(value)
        told = said.get(k, UNSAID)
        if told is UNSAID:
            told = chain.IMPLIED.get(k)
        if told != value:
            return f"{k} is {short(value)}, the record says {short(told)}"
    return None


UNSAID = object()


def check_head(conn: Connection, v: Verdict) -> None:
    head = chain.head(conn)
    assert head is not None
    _, seq, digest = head
    if (seq, digest) != (v.last_seq, v.last_hash):
        v.fail(
            "head",
            f"chain_head says seq {seq}, the chain ends at seq {v.last_seq}"
            + (" (links removed?)" if seq > v.last_seq else ""),
        )


def check_unchained(conn: Connection, v: Verdict) -> None:
    ended = sync_runs.c.status != "running"
    for table, where in ((job_history, true()), (sync_runs, ended), (detail_history, true())):
        query = select(func.count(), func.min(table.c.id)).where(table.c.seq.is_(None), where)
        n, first = conn.execute(query).one()
        if n:
            v.fail("unchained", f"{n} {table.name} rows outside the chain (the first: id {first})")


def check_details(conn: Connection, v: Verdict) -> None:
    """Each job's details are what its newest details record says."""
    d = detail_history.c
    newest = select(func.max(d.id)).group_by(d.job_id)
    query = select(d.job_id, d.details_sha256, d.record).where(d.id.in_(newest)).order_by(d.job_id)
    summed_up = inspect(conn).has_table("job_metric_summary")  # from migration 0015 on
    for job_id, digest, record in conn.execute(query).all():
        v.details += 1
        try:
            said = json.loads(record)
            held = [[str(f) for f in said["files"]], [str(f) for f in said["contents"]]]
        except (ValueError, KeyError, TypeError):
            held = [[], []]  # a record out of shape: already reported by the chain's check
        if chain.details_digest(conn, job_id, *held) != digest:
            v.fail("current", f"job {job_id}: its details are not what its newest details record says")
        elif summed_up and detail_store.stored_summary_differs(conn, job_id):
            v.fail("current", f"job {job_id}: job_metric_summary is not what its metric rows sum up to")
    s = details_state.c
    missing = select(s.job_id).where(s.state == "done", s.job_id.not_in(select(d.job_id)))
    n = conn.execute(select(func.count()).select_from(missing.subquery())).scalar_one()
    if n:
        v.fail("unchained", f"{n} jobs' details are archived without a details record")
    alone = select(job_metric_summary.c.job_id).where(job_metric_summary.c.job_id.not_in(select(d.job_id)))
    if summed_up and (first := conn.execute(alone.limit(1)).scalar()):
        v.fail("current", f"job {first}: job_metric_summary holds a job without a details record")


def record(conn: Connection, v: Verdict) -> None:
    """The verdict, in verify_runs (`archiver status` shows the newest)."""
    failures = "\n".join(f"{k}: {v.first[k]}" for k in KINDS if k in v.first) or None
    row = {"verified_at": time.time(), "rows_checked": v.rows, "intact": int(v.intact)}
    conn.execute(
        verify_runs.insert().values(row | {"anchored_seq": v.anchored_seq or None, "failures": failures})
    )


def audit_lines(conn: Connection) -> list[str]:
    """For `archiver status` and the dashboard: the last checkpoint and the last verify."""
    if not inspect(conn).has_table("verify_runs"):  # not migrated yet: the next sync migrates it
        return []
    r = sync_runs.c
    run = conn.execute(
        select(r.id, r.seq, r.hash, r.finished_at).where(r.seq.is_not(None)).order_by(r.seq.desc())
    ).first()
    lines = ["Last checkpoint: none yet (the next sync writes one)"]
    if run is not None:
        at = reports.utc(run.finished_at)
        lines = [f"Last checkpoint: seq {run.seq:,} ({run.hash[:16]}...), run {run.id}, {at}"]
    v = verify_runs.c
    last = conn.execute(select(verify_runs).order_by(v.id.desc())).first()
    if last is None:
        return [*lines, "Last verify: never (archiver verify checks the audit trail)"]
    at = reports.utc(last.verified_at)
    if last.intact:
        return [*lines, f"Last verify: INTACT, {last.rows_checked:,} links, {at}"]
    kinds = ", ".join(line.split(":")[0] for line in (last.failures or "").splitlines())
    return [*lines, f"Last verify: NOT INTACT ({kinds}), {at}"]
