"""Read commands read: they create no file, change no row, and work for a user who may only read."""

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver.sync import sync
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for

NO_API = "http://127.0.0.1:9/v1"


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
