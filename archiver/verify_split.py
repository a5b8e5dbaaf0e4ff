"""How `verify` reads: as fast as the archive allows (fast_reads), and on two cores: the current
rows (verify_jobs.check_jobs) are checked in a second process while the first checks the chain.
At a million jobs each is about half of the work.

The second process must read what the first reads. On PostgreSQL it imports the first's snapshot
(`pg_export_snapshot`). SQLite cannot share one, so the second process returns the chain head of
the snapshot it read, and when the first's differs (a sync committed between the two), the first
checks the rows again itself. A sync writes a job's rows in the transaction that writes their
history row, a link of the chain: two snapshots with the same head hold the same rows to check.

If the second process fails in any way, the first checks the rows itself: the verdict never
depends on it. Below SPLIT_FROM links starting a process (a second of imports) costs more than
it saves.

The second process is `python -m archiver.verify_split`, not multiprocessing's: a spawned
process would import the caller's main script again (a library user's script, run twice). It
gets the archive's URL on its standard input (never in its arguments: it may hold a password)
and answers on its standard output, in JSON; its standard error goes nowhere. It runs in a
session of its own, so Ctrl-C at the terminal reaches the first process only, which kills it as
it stops; on Linux it also dies with the first (PR_SET_PDEATHSIG).
"""

import contextlib
import ctypes
import gc
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError

from archiver import chain, db
from archiver.verify_jobs import check_jobs

if TYPE_CHECKING:
    from archiver.verify import Verdict

log = logging.getLogger(__name__)

SPLIT_FROM = 200_000  # links
JSONObj = dict[str, Any]
T = TypeVar("T")


def fast_reads(conn: Connection, check: Callable[[], T]) -> T:
    """`check()`, reading as fast as the archive allows.

    Without the cyclic garbage collector: a check reads millions of rows as tuples (none in a
    cycle, all freed as they go), and the collector's passes over them were 11 % of its time at
    1,000,000 jobs. On SQLite the file is read memory-mapped (each job's newest history row is a
    random read: a system call each otherwise, 10 % of the time), and text is decoded as sqlite3
    does by default (in C), not by the archive's tolerant text_factory (db.py), a third of the
    time of reading the jobs. archiver writes only UTF-8, so a value that is not (written by
    something else) raises; the check then starts over with the tolerant reading, where that
    value no longer matches what vouches for it."""
    enabled = gc.isenabled()
    gc.disable()
    driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
    try:
        if driver is None:
            return check()
        tolerant, driver.text_factory = driver.text_factory, str
        driver.execute(f"PRAGMA mmap_size = {2**40}")
        try:
            return check()
        except DBAPIError as e:
            if "decode" not in str(e.orig):
                raise
            log.info("a value is not UTF-8 text: checking again, reading it with U+FFFD for its bytes")
        finally:  # an interrupted read may have closed the connection: nothing to restore then
            with contextlib.suppress(sqlite3.Error):
                driver.text_factory = tolerant
                driver.execute("PRAGMA mmap_size = 0")
        return check()
    finally:
        if enabled:
            gc.enable()


@dataclass
class Helper:
    process: subprocess.Popen[bytes]
    head: Any  # the chain head of the first process's snapshot


def start(conn: Connection, url: URL) -> Helper | None:
    """A second process checking the current rows of `conn`'s snapshot, if it is worth one.
    `url` is the archive's (opened read-only there)."""
    head = chain.head(conn)
    if head is None or head[1] < SPLIT_FROM or (os.cpu_count() or 1) < 2:
        return None
    snapshot = None
    if conn.dialect.name == "postgresql":
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    request = {"url": url.render_as_string(hide_password=False), "snapshot": snapshot, "parent": os.getpid()}
    argv = [sys.executable, "-m", "archiver.verify_split"]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
    try:
        process = subprocess.Popen(argv, **pipes, start_new_session=True)  # type: ignore[call-overload]
    except OSError as e:
        log.info("verify's second process did not start (%s): checking the current rows here", e)
        return None
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(request).encode())
        process.stdin.close()
    except OSError:  # it died at once: finish() finds no answer
        pass
    return Helper(process, list(head))


def finish(helper: Helper) -> "Verdict | None":
    """The second process's verdict on the current rows, or None when the first must check them
    itself: the process failed, or read another snapshot than the first's."""
    from archiver.verify import Verdict

    process = helper.process
    assert process.stdout is not None
    with process.stdout:  # interrupted here, the caller stops it (verify.check_all)
        out = process.stdout.read()
    process.wait()
    try:
        answer = json.loads(out)
        head, verdict = (
            answer["head"],
            Verdict(jobs=answer["jobs"], first=answer["first"], counts=answer["counts"]),
        )
    except (ValueError, TypeError, KeyError):  # it failed: no answer, or null
        log.info("verify's second process did not finish: checking the current rows here")
        return None
    if head != helper.head:
        log.info("a sync committed between verify's two snapshots: checking the current rows here")
        return None
    log.info("the current rows were checked in a second process (pid %s)", process.pid)
    return verdict


def stop(helper: Helper) -> None:
    """End the second process now (the first's check failed)."""
    helper.process.kill()
    helper.process.wait()


def check_current(url: URL, snapshot: str | None) -> JSONObj:
    """In the second process: check_jobs in the first's snapshot (PostgreSQL) or a snapshot of
    its own (SQLite), with that snapshot's chain head."""
    engine = db.make_engine(url, read_only=True)
    with engine.connect() as conn:
        if snapshot is not None:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if snapshot is not None:
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            head = chain.head(conn)
            verdict = fast_reads(conn, lambda: current_rows(conn))
    engine.dispose()
    return {"head": list(head or ()), "jobs": verdict.jobs, "first": verdict.first, "counts": verdict.counts}


def current_rows(conn: Connection) -> "Verdict":
    """A new verdict each time: fast_reads checks again from the start after a value not UTF-8."""
    from archiver.verify import Verdict

    verdict = Verdict()
    check_jobs(conn, verdict)
    return verdict


def die_with(parent: int) -> None:
    """On Linux, be killed when the first process ends, however it ends."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != parent:  # it ended before that
        os._exit(1)


def main() -> None:
    """`python -m archiver.verify_split`: the request on standard input, the answer (or null) on
    standard output."""
    request = json.load(sys.stdin)
    die_with(request["parent"])
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        answer: JSONObj | None = check_current(make_url(request["url"]), request["snapshot"])
    except Exception:
        answer = None
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
