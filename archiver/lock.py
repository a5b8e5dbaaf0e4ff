"""The run lock: one sync (or migration) per archive at a time, and whether one holds it now.

SQLite: flock(2) on `<archive>.lock` beside the file; PostgreSQL: a session advisory lock on a
connection held for the run. Either way a process that dies drops its lock with it.
"""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from archiver.db import sqlite_path
from archiver.errors import DatabaseError, TryLater

LOCK_KEY = {"a": 0x61726368, "b": 1}  # pg_try_advisory_lock(int, int): "arch", 1


@contextmanager
def run_lock(engine: Engine) -> Iterator[None]:
    """One sync at a time per archive; a lock held by a killed process frees itself."""
    if engine.dialect.name == "sqlite":
        path = sqlite_path(engine.url)
        if not path:
            yield
            return
        with file_lock(Path(path + ".lock")):
            yield
    else:
        with advisory_lock(engine):
            yield


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """flock(2) on a file beside the archive: the kernel drops it when the holder dies."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise DatabaseError(f"cannot open the lock file {path}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TryLater(busy_message(*holder_line(fd))) from None
        os.pwrite(fd, f"{os.getpid():>10} {time.time():>12.0f}\n".encode(), 0)  # one fixed-width write
        yield
    finally:
        os.close(fd)  # closing releases the lock


def holder_line(fd: int) -> list[str]:
    """The holder's "pid since"; it writes them just after taking the lock, so wait a moment for them."""
    deadline = time.monotonic() + 0.5
    while True:
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        if len(holder) >= 2 or time.monotonic() > deadline:
            return holder[:2]
        time.sleep(0.01)


@contextmanager
def advisory_lock(engine: Engine) -> Iterator[None]:
    """A session advisory lock on a connection held for the run; it ends with the connection."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"SET application_name = 'archiver sync pid={os.getpid()}'"))  # before: no race
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:a, :b)"), LOCK_KEY).scalar()
        if not got:
            holder = conn.execute(
                sa.text(
                    "SELECT a.application_name, extract(epoch FROM a.backend_start) FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.classid = :a AND l.objid = :b AND l.granted AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                LOCK_KEY,
            ).first()
            pid = holder[0].rpartition("pid=")[2] if holder and holder[0] else "?"
            raise TryLater(busy_message(pid, str(holder[1]) if holder else None))
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEY)


def sync_running(engine: Engine) -> bool:
    """Whether some process holds the run lock now (without taking it)."""
    return lock_holder(engine) is not None


def lock_holder(engine: Engine) -> str | None:
    """The pid of the process that holds the run lock now ("?" if it cannot be told), else None."""
    if engine.dialect.name != "sqlite":
        query = sa.text(
            "SELECT a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = :a AND l.objid = :b AND l.granted"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with engine.connect() as conn:
            row = conn.execute(query, LOCK_KEY).first()
        if row is None:
            return None
        return row[0].rpartition("pid=")[2] if row[0] and "pid=" in row[0] else "?"
    path = sqlite_path(engine.url)
    try:
        fd = os.open(path + ".lock", os.O_RDONLY) if path else None
    except OSError:
        return None  # no lock file: no sync ever ran here
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        holder = holder_line(fd)
        return holder[0] if holder else "?"
    finally:
        os.close(fd)


def busy_message(pid: str = "?", since: str | None = None) -> str:
    try:
        when = time.strftime("%H:%M:%S", time.localtime(float(since or "")))
    except ValueError:
        when = "?"
    return f"another sync is running (pid {pid}, since {when})"
