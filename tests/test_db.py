"""Schema migrations and engine settings, on SQLite and PostgreSQL."""

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from archiver import db, lock
from tests.conftest import PG_URL, assert_archive_equals, cli_env, pg_admin, run_cli
from tests.fake_api import FakeApi, make_jobs

TABLES = {
    "jobs",
    "errors",
    "result_files",
    "integrations",
    "tags",
    "sync_runs",
    "job_history",
    "run_listings",
}


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = db.make_engine(db.parse_url(db_url))
    db.upgrade(engine)
    assert tables(engine) >= TABLES
    db.downgrade(engine, "base")
    assert tables(engine) == set()
    db.upgrade(engine)
    with engine.connect() as conn:
        assert db.current(conn) == db.head()
    engine.dispose()


# SQLite's reflection cannot read an index on an expression: there it is compared on PostgreSQL only.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_models_match_migrations(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        command.check(db.alembic_config(conn))  # raises if autogenerate finds a difference


# Every object in the database with the catalog's own definition of it, as (kind, name, definition).
def test_ensure_schema_refuses_without_migrate(db_url: str) -> None:
    from archiver.errors import ConfigError

    engine = db.make_engine(db.parse_url(db_url))
    with pytest.raises(ConfigError, match="archiver db upgrade"):
        db.ensure_schema(engine, migrate=False)
    assert tables(engine) == set()
    assert db.ensure_schema(engine, migrate=True) == "empty"
    assert db.ensure_schema(engine, migrate=False) is None
    engine.dispose()


def test_sqlite_pragmas_and_private_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        engine = db.make_engine(db.parse_url(str(tmp_path / "a.db")))
        with engine.begin() as conn:
            settings = [
                conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            ]
            conn.exec_driver_sql("CREATE TABLE t (x)")
        assert settings == ["wal", 1, db.BUSY_TIMEOUT_MS, 2]
        for name in ("a.db", "a.db-wal", "a.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        engine.dispose()
    finally:
        os.umask(old)


def test_parse_url() -> None:
    assert db.parse_url("x/archive.db").render_as_string() == "sqlite:///x/archive.db"
    assert db.parse_url("postgresql://u:pw@h/d").drivername == "postgresql+psycopg"
    assert db.show_url(db.parse_url("postgresql://u:pw@h/d")) == "postgresql+psycopg://u:***@h/d"


def test_head_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(str(db.resource_path("migrations"))).get_current_head() == db.HEAD


@pytest.fixture
def sql_ascii_url() -> Iterator[str]:
    """A database made the way an empty LANG makes one: SQL_ASCII, so the server sends bytes, not text."""
    admin = pg_admin()
    assert admin is not None
    name = f"archiver_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        yield db.parse_url(PG_URL).set(database=name).render_as_string(hide_password=False)  # type: ignore[arg-type]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_a_sql_ascii_postgresql_database_archives_utf8_text(
    sql_ascii_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(30, seed=70)
    fake.jobs[0]["user_provided_suffix"] = "données-ß-✓"
    fake.jobs[1]["metadata"] = {"note": "naïve 日本"}
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=sql_ascii_url)
    synced = run_cli("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    engine = db.make_engine(db.parse_url(sql_ascii_url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW server_encoding").scalar() == "SQL_ASCII"
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()
    suffix = run_cli(
        "query", "SELECT user_provided_suffix FROM jobs WHERE user_provided_suffix = 'données-ß-✓'", env=env
    )
    assert (suffix.returncode, suffix.stdout.splitlines()[2:]) == (0, ["données-ß-✓"]), suffix.stderr
    for args in (("report", "status_overview"), ("runs",), ("status",), ("db", "current")):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)


def test_db_upgrade_takes_the_run_lock(db_url: str) -> None:
    engine = db.make_engine(db.parse_url(db_url))
    with lock.run_lock(engine):  # as a running sync holds it
        blocked = run_cli("db", "upgrade", env=cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=db_url))
    assert blocked.returncode == 75, blocked.stderr
    [line] = blocked.stderr.splitlines()
    assert line.startswith("archiver: error: another sync is running (pid ")
    assert tables(engine) == set()  # it changed nothing
    upgraded = run_cli("db", "upgrade", env=cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=db_url))
    assert upgraded.returncode == 0, upgraded.stderr
    assert tables(engine) >= TABLES
    engine.dispose()
