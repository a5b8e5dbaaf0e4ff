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
"""

import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Connection
from sqlalchemy.exc import DBAPIError

from archiver import chain, db
from archiver.verify_jobs import check_jobs

if TYPE_CHECKING:
    from archiver.verify import Verdict

log = logging.getLogger(__name__)

SPLIT_FROM = 200_000  # links
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
        finally:
            driver.text_factory = tolerant
            driver.execute("PRAGMA mmap_size = 0")
        return check()
    finally:
        if enabled:
            gc.enable()


@dataclass
class Helper:
    process: BaseProcess
    pipe: Pipe
    head: Any  # the chain head of the first process's snapshot


def start(conn: Connection, url: URL) -> Helper | None:
    """A second process checking the current rows of `conn`'s snapshot, if it is worth one.
    `url` is the archive's (opened read-only there); it reaches the process through a pipe."""
    head = chain.head(conn)
    if head is None or head[1] < SPLIT_FROM or (os.cpu_count() or 1) < 2:
        return None
    snapshot = None
    if conn.dialect.name == "postgresql":
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    context = multiprocessing.get_context("spawn")  # a fork would carry the open connection over
    mine, theirs = context.Pipe(duplex=False)
    process = context.Process(target=check_current, args=(url, snapshot, theirs), daemon=True)
    process.start()
    theirs.close()
    return Helper(process, mine, head)


def finish(helper: Helper) -> "Verdict | None":
    """The second process's verdict on the current rows, or None when the first must check them
    itself: the process failed, or read another snapshot than the first's."""
    verdict: Verdict | None
    try:
        head, verdict = helper.pipe.recv()
    except (EOFError, OSError, ValueError):  # it died, or sent None
        head, verdict = None, None
    finally:
        helper.pipe.close()
        helper.process.join()
    if verdict is None:
        log.info("verify's second process did not finish: checking the current rows here")
    elif head != helper.head:
        log.info("a sync committed between verify's two snapshots: checking the current rows here")
        verdict = None
    else:
        log.info("the current rows were checked in a second process (pid %s)", helper.process.pid)
    return verdict


def check_current(url: URL, snapshot: str | None, pipe: Pipe) -> None:
    """In the second process: check_jobs in the first's snapshot (PostgreSQL) or a snapshot of
    its own (SQLite), sent back with that snapshot's chain head; None if anything fails."""
    from archiver.verify import Verdict

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the first process answers Ctrl-C and ends this one
    logging.getLogger().addHandler(logging.NullHandler())  # nothing of its own on stderr
    answer: tuple[Any, Verdict] | None = None
    try:
        engine = db.make_engine(url, read_only=True)
        with engine.connect() as conn:
            if snapshot is not None:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if snapshot is not None:
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                answer = (chain.head(conn), fast_reads(conn, lambda: current_rows(conn)))
        engine.dispose()
    except BaseException:
        answer = None
    pipe.send(answer)
    pipe.close()


def current_rows(conn: Connection) -> "Verdict":
    from archiver.verify import Verdict

    verdict = Verdict()
    check_jobs(conn, verdict)
    return verdict
