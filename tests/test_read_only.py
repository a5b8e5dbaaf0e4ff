"""Read commands read: they create no file, change no row, and work for a user who may only read.

Permission tests run the CLI as `nobody`: CI runs as root, and root ignores permission bits.
"""

import hashlib
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import db, reports
from archiver.cli import cli
from archiver.sync import sync
from tests.conftest import assert_archive_equals, cli_env, run_cli
from tests.fake_api import FakeApi, add_new_jobs, make_jobs
from tests.test_sync import api_for

NO_API = "http://127.0.0.1:9/v1"
NOBODY = pwd.getpwnam("nobody")
Result = subprocess.CompletedProcess[str]


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def enterable_by_all(path: Path) -> Iterator[None]:
    """The child imports archiver's modules and reads its sql/ from the checkout (and its .venv):
    for the test, let others enter the folders above it that they cannot (say, a `mktemp -d`)."""
    changed = [(p, p.stat().st_mode) for p in (path, *path.parents) if not p.stat().st_mode & stat.S_IXOTH]
    try:
        for p, mode in changed:
            p.chmod(mode | stat.S_IXOTH)
        yield
    finally:
        for p, mode in changed:
            p.chmod(mode)


def run_cli_as_nobody(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """The CLI in a forked child that dropped root for nobody. No exec: the interpreter may live where
    nobody cannot read it (CI's is under /root), so the child runs the modules this process loaded."""
    reports.names()  # what the child imports lazily it imports from here, where root may read it
    with enterable_by_all(ROOT), tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the child ends with os._exit)
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.setgroups([])
                os.setgid(NOBODY.pw_gid)
                os.setuid(NOBODY.pw_uid)
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(env)
                cli.main(list(args), prog_name="archiver")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            list(args), os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode()
        )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that nobody may enter (pytest's tmp_path is private to root), owned by root."""
    path = Path(tempfile.mkdtemp(prefix="archiver-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def files(directory: Path) -> dict[str, tuple[int, str]]:
    """Each file's mode and content: a read that wrote or created anything shows here."""
    return {
        p.name: (p.stat().st_mode & 0o777, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.iterdir())
    }


def snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Every row of every table, and the session's read-only default on PostgreSQL."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = inspector.get_table_names()
        out: dict[str, Any] = {
            name: sorted(map(repr, conn.exec_driver_sql(f'SELECT * FROM "{name}"'))) for name in names
        }
        if engine.dialect.name == "sqlite":
            out["pragmas"] = [
                conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("user_version", "journal_mode")
            ]
        else:
            out["database_settings"] = conn.exec_driver_sql(
                "SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).all()
    return out


@pytest.fixture
def synced(engine: sa.Engine) -> sa.Engine:
    sync(api_for(FakeApi(make_jobs(20, seed=80))), engine)
    return engine


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_query_takes_one_statement_and_cannot_write(synced: sa.Engine, tmp_path: Path) -> None:
    env = cli_env(NO_API, ARCHIVER_DATABASE_URL=url_of(synced))
    attempts = [
        "SET TRANSACTION READ WRITE; DELETE FROM jobs; COMMIT",
        "SELECT 1; DELETE FROM jobs",
        "COMMIT; DELETE FROM jobs",
        "WITH gone AS (DELETE FROM jobs RETURNING id) SELECT count(*) FROM gone",
        "DELETE FROM jobs",
    ]
    if synced.dialect.name == "postgresql":
        attempts += [
            "SET TRANSACTION READ WRITE",
            "SELECT set_config('transaction_read_only', 'off', true)",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "ALTER DATABASE CURRENT SET default_transaction_read_only = off",
            "CREATE TEMP TABLE t AS SELECT * FROM jobs",
        ]
    else:
        attempts += [
            f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS e",
            f"VACUUM INTO '{tmp_path / 'copy.db'}'",
            "PRAGMA user_version = 7",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA query_only = OFF",
            "CREATE TEMP TABLE t AS SELECT * FROM jobs",
        ]
    files = sorted(p.name for p in tmp_path.iterdir())
    before = snapshot(synced)
    for sql in attempts:
        result = run_cli("query", sql, env=env)
        assert result.returncode == 2, (sql, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("archiver: error: query failed: "), (sql, line)
        assert snapshot(synced) == before, sql
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_query_reads(synced: sa.Engine) -> None:
    env = cli_env(NO_API, ARCHIVER_DATABASE_URL=url_of(synced))
    like = run_cli(
        "query", "SELECT count(*) AS n FROM jobs WHERE id LIKE 'ftjob-%';", "--format=csv", env=env
    )
    assert (like.returncode, like.stdout) == (0, "n\n20\n"), like.stderr
    pragma = run_cli(
        "query", "PRAGMA table_info(jobs)" if synced.dialect.name == "sqlite" else "SHOW TimeZone", env=env
    )
    assert pragma.returncode == 0, pragma.stderr
    empty = run_cli("query", "  ", env=env)
    assert empty.returncode == 2 and "give one SQL statement" in empty.stderr


def test_db_current_on_a_mistyped_path_creates_nothing(tmp_path: Path) -> None:
    result = run_cli("db", "current", "--db", "archve.db", env=cli_env(NO_API), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "archiver: error: no archive at archve.db: run `archiver sync` first"
    ]
    assert list(tmp_path.iterdir()) == []


READS = [
    ("report", "status_overview", "--format=csv"),
    ("query", "SELECT count(*) AS n FROM jobs", "--format=csv"),
    ("runs", "--format=csv"),
    ("status",),
    ("db", "current"),
]


@pytest.fixture
def read_only_user(
    db_url: str, fake: FakeApi, base_url: str, shared_dir: Path
) -> Iterator[tuple[Callable[..., Result], Callable[[], Any]]]:
    """A synced archive, a way to run the CLI as a user who may only read it, and the archive's state:
    on SQLite nobody, with the archive 0644 in a directory of root's; on PostgreSQL a role with only
    the README's GRANTs."""
    fake.jobs = make_jobs(20, seed=81)
    url = db_url if db_url.startswith("postgresql") else str(shared_dir / "archive.db")
    assert run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=url)).returncode == 0
    if not db_url.startswith("postgresql"):
        Path(url).chmod(0o644)
        yield (
            lambda *args: run_cli_as_nobody(
                *args, env=cli_env(NO_API, ARCHIVER_DATABASE_URL=url), cwd=shared_dir
            ),
            lambda: files(shared_dir),
        )
        return
    role = f"auditor_{uuid.uuid4().hex[:8]}"
    owner = sa.create_engine(db.parse_url(db_url), isolation_level="AUTOCOMMIT")
    name = owner.url.database
    grants = [  # as in the README's "Read-only access"
        f"CREATE ROLE {role} LOGIN",
        f'GRANT CONNECT ON DATABASE "{name}" TO {role}',
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
    ]
    with owner.connect() as conn:
        for grant in grants:
            conn.exec_driver_sql(grant)
    auditor = db.parse_url(db_url).set(username=role).render_as_string(hide_password=False)
    try:
        yield (
            lambda *args: run_cli(*args, env=cli_env(NO_API, ARCHIVER_DATABASE_URL=auditor)),
            lambda: snapshot(owner),
        )
    finally:
        with owner.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        owner.dispose()


def test_every_read_command_works_for_a_user_who_may_only_read(
    read_only_user: tuple[Callable[..., Result], Callable[[], Any]],
) -> None:
    run, state = read_only_user
    before = state()
    results = {args[0]: run(*args) for args in READS}
    assert {k: (r.returncode, r.stderr) for k, r in results.items()} == {k[0]: (0, "") for k in READS}
    assert results["report"].stdout.splitlines()[0] == "status,jobs,oldest_created,newest_created"
    assert results["query"].stdout == "n\n20\n"
    assert len(results["runs"].stdout.splitlines()) == 2
    assert results["status"].stdout.startswith("OK: last successful sync ")
    assert results["db"].stdout == f"{db.head()} (head)\n"
    assert state() == before  # nothing created, nothing changed


KILLED_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute("UPDATE jobs SET model = 'only-in-the-wal'")
os._exit(0)  # killed: the -wal and -shm stay, the commit is in the -wal only
"""


def test_a_reader_who_may_only_read_sees_what_a_killed_writer_committed(
    fake: FakeApi, base_url: str, shared_dir: Path
) -> None:
    """With -wal and -shm present SQLite reads through the existing -shm (mode=ro), WAL included."""
    path = shared_dir / "archive.db"
    fake.jobs = make_jobs(20, seed=82)
    assert run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=str(path))).returncode == 0
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], check=True)
    for name in ("archive.db", "archive.db-wal", "archive.db-shm"):
        (shared_dir / name).chmod(0o644)
    before = files(shared_dir)
    env = cli_env(NO_API, ARCHIVER_DATABASE_URL=str(path))
    result = run_cli_as_nobody(
        "query", "SELECT DISTINCT model FROM jobs", "--format=csv", env=env, cwd=shared_dir
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "model\nonly-in-the-wal\n")
    assert files(shared_dir) == before


def test_sync_into_a_directory_it_cannot_write_is_one_line(
    fake: FakeApi, base_url: str, shared_dir: Path
) -> None:
    path = shared_dir / "archive.db"
    fake.jobs = make_jobs(10, seed=83)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(path))
    assert run_cli("sync", env=env).returncode == 0
    (shared_dir / "archive.db.lock").unlink()
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)  # the archive is nobody's, its directory is not
    fake.requests.clear()
    result = run_cli_as_nobody("sync", env=env, cwd=shared_dir)
    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        "archiver: error: cannot create archive.db-wal, archive.db-shm, archive.db.lock: "
        f"the directory {shared_dir} is not writable"
    ]
    assert fake.requests == []


def test_a_failed_sync_on_a_read_only_archive_leaves_nothing_that_breaks_the_next(
    fake: FakeApi, base_url: str, shared_dir: Path
) -> None:
    path = shared_dir / "archive.db"
    fake.jobs = make_jobs(30, seed=84)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(path))
    assert run_cli("sync", env=env).returncode == 0
    for p in [shared_dir, *shared_dir.iterdir()]:
        os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
    path.chmod(0o400)
    add_new_jobs(fake.jobs, 5, random.Random(84))
    failed = run_cli_as_nobody("sync", env=env, cwd=shared_dir)
    assert failed.returncode == 4, failed.stderr
    assert failed.stderr.splitlines() == [
        f"archiver: error: the archive {path} is not writable by this user (mode 400): nothing was written; "
        "make it writable, and archive.db-wal and archive.db-shm too if they exist"
    ]
    assert sorted(p.name for p in shared_dir.iterdir()) == ["archive.db", "archive.db.lock"]
    # As an older archiver left them: -wal and -shm with the read-only archive's mode.
    for name in ("archive.db-wal", "archive.db-shm"):
        (shared_dir / name).touch(0o400)
        os.chown(shared_dir / name, NOBODY.pw_uid, NOBODY.pw_gid)
    path.chmod(0o600)  # the user fixes the archive's mode, and only that
    fixed = run_cli_as_nobody("sync", env=env, cwd=shared_dir)
    assert fixed.returncode == 0, fixed.stderr
    engine = db.make_engine(db.parse_url(str(path)))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


def test_a_user_who_may_not_read_the_archive_is_told_so_in_one_line(
    fake: FakeApi, base_url: str, shared_dir: Path
) -> None:
    path = shared_dir / "archive.db"
    fake.jobs = make_jobs(5, seed=84)
    assert run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=str(path))).returncode == 0
    env = cli_env(NO_API, ARCHIVER_DATABASE_URL=str(path))  # the archive is root's, mode 600
    for command in (["status"], ["report", "status_overview"], ["query", "SELECT 1"]):
        result = run_cli_as_nobody(*command, env=env, cwd=shared_dir)
        assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
            4,
            "",
            [
                f"archiver: error: cannot read the archive {path} (mode 600): this user is not "
                "allowed to; see the README's Read-only access"
            ],
        )
