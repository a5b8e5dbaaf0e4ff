"""Database faults: a lock held too long, a full disk, a read-only archive. One line, exit 4, nothing lost."""

import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver import db, normalize, store
from tests.conftest import assert_archive_equals, cli_env, count_rows, run_cli
from tests.fake_api import FakeApi, add_new_jobs, make_jobs


def test_a_lock_held_longer_than_the_busy_timeout(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(40, seed=60)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    assert run_cli("sync", env=env).returncode == 0
    add_new_jobs(fake.jobs, 5, random.Random(60))
    fake.requests.clear()
    engine = db.make_engine(db.parse_url(db_url))
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(db_url, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = engine.raw_connection()
        holder.cursor().execute("LOCK TABLE sync_runs IN ACCESS EXCLUSIVE MODE")
    try:
        blocked = run_cli("sync", env=env)
    finally:
        holder.rollback()
        holder.close()
    assert blocked.returncode == 4, blocked.stderr
    [line] = blocked.stderr.strip().splitlines()
    assert line.startswith("archiver: error: database ")
    assert "database is locked" in line or "lock timeout" in line
    assert fake.requests == []  # it failed before asking the API anything
    assert run_cli("sync", env=env).returncode == 0
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (CI runs as root, which may mount); remount it larger to free space. (1 MiB no
    longer holds the WAL of a first sync since migration 0010 added the details tables, 2 MiB
    since 0011 added the audit chain's.)"""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=700", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_a_full_disk_fails_cleanly_and_keeps_what_was_committed(
    small_disk: Path, fake: FakeApi, base_url: str
) -> None:
    path = small_disk / "a.db"
    fake.jobs = make_jobs(50, seed=61)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(path), ARCHIVER_DETAILS="0")  # the walk fills the disk
    assert run_cli("sync", env=env).returncode == 0
    before = {j["id"] for j in fake.jobs}
    add_new_jobs(fake.jobs, 3000, random.Random(61))
    full = run_cli("sync", env=env)
    assert full.returncode == 4, full.stderr
    assert full.stderr.strip().splitlines()[-1] == "archiver: error: database: database or disk is full"
    assert "Traceback" not in full.stderr
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        archived = {r[0] for r in conn.execute("SELECT id FROM jobs")}
    assert before <= archived and (len(archived) - 50) % 100 == 0  # whole pages only
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = run_cli("sync", env=env)
    assert again.returncode == 0, again.stderr
    engine = db.make_engine(db.parse_url(str(path)))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


def test_a_read_only_archive_is_refused_before_any_request(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(20, seed=62)
    assert run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)).returncode == 0
    fake.requests.clear()
    if db_url.startswith("postgresql"):
        admin = sa.create_engine(db.parse_url(db_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'ALTER DATABASE "{admin.url.database}" SET default_transaction_read_only = on'
            )
        admin.dispose()
        read_only = db_url
    else:  # as root, file permissions do not stop a write: open it read-only instead
        read_only = f"sqlite:///file:{db_url}?mode=ro&uri=true"
    result = run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=read_only))
    assert result.returncode == 4, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "read-only" in line or "readonly" in line
    assert fake.requests == []
    if not db_url.startswith("postgresql"):
        assert not Path(f"file:{db_url}.lock").exists() and not Path("file:").exists()


@pytest.mark.parametrize("value", ["postgresql://", "mysql+nodriver://x/y"])
def test_an_unusable_database_url_is_a_config_error(tmp_path: Path, value: str) -> None:
    result = run_cli("sync", env=cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=value), cwd=tmp_path)
    assert result.returncode in (2, 4), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_long_reader_does_not_block_a_sync(tmp_path: Path, fake: FakeApi, base_url: str) -> None:
    """An analyst's open read transaction (WAL): the sync writes past it; the reader keeps its snapshot."""
    path = tmp_path / "a.db"
    fake.jobs = make_jobs(100, seed=63)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(path))
    assert run_cli("sync", env=env).returncode == 0
    add_new_jobs(fake.jobs, 250, random.Random(63))
    with closing(sqlite3.connect(path, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (100,)
        result = run_cli("sync", env=env)
        assert result.returncode == 0, result.stderr
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (100,)  # its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (350,)
    engine = db.make_engine(db.parse_url(str(path)))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no server to kill
def test_a_postgresql_backend_killed_mid_sync(db_url: str, fake: FakeApi, base_url: str) -> None:
    """pg_terminate_backend on the sync's sessions: the page in flight rolls back, one line, exit 4;
    the next run completes the archive."""
    fake.jobs = make_jobs(1500, seed=64)
    fake.delay = 0.05
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, ARCHIVER_DETAILS="0")  # the walk is what is cut
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver", "sync", "--page-size=50"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while fake.pages_served < 5:
        time.sleep(0.01)
    admin = sa.create_engine(db.parse_url(db_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    admin.dispose()
    _, err = proc.communicate(timeout=60)
    assert killed and proc.returncode == 4, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("archiver: error: database") and "Traceback" not in err
    fake.delay = 0
    again = run_cli("sync", env=env)
    assert again.returncode == 0, again.stderr
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


def test_a_page_the_database_refuses_is_a_database_error_and_writes_nothing(engine: sa.Engine) -> None:
    """On PostgreSQL a page's inserts share one pipeline, whose errors arrive at its end: they
    still come as SQLAlchemy's errors (sync turns those into one line, exit 4), and roll back."""
    batch = store.make_batch(make_jobs(5, seed=65), normalize.Notes(), "unknown")
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)foreign key"), engine.begin() as conn:
        store.upsert_page(conn, batch.jobs, 999, time.time(), batch.hashes)  # no run 999
    assert [count_rows(engine, t) for t in ("jobs", "job_history", "result_files")] == [0, 0, 0]
