"""Schema migrations and engine settings, on SQLite and PostgreSQL."""

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from archiver import db, lock
from tests.conftest import PG_URL, assert_archive_equals, cli_env, pg_admin, run_cli, scratch_database
from tests.fake_api import FakeApi, make_jobs

TABLES = {"jobs", "errors", "result_files", "integrations", "tags", "sync_runs", "job_history"}


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


def test_models_match_migrations(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        command.check(db.alembic_config(conn))  # raises if autogenerate finds a difference


# Every object in the database with the catalog's own definition of it, as (kind, name, definition).
CATALOG = {
    "sqlite": "SELECT type, name, tbl_name || ': ' || coalesce(sql, '') FROM sqlite_master",
    "postgresql": """
SELECT 'relation', relname, relkind::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
UNION ALL SELECT 'column', table_name || '.' || column_name, concat_ws(' ', ordinal_position, data_type,
    character_maximum_length, numeric_precision, is_nullable, column_default, is_identity, collation_name)
    FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'constraint', conname, conrelid::regclass::text || ': ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'sequence', sequencename, concat_ws(' ', data_type, start_value, min_value, max_value,
    increment_by, cycle, cache_size, last_value) FROM pg_sequences WHERE schemaname = 'public'
UNION ALL SELECT 'view', viewname, definition FROM pg_views WHERE schemaname = 'public'
UNION ALL SELECT 'trigger', tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'function', proname, pg_get_function_identity_arguments(oid)
    FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL SELECT 'type', typname, typtype::text FROM pg_type
    WHERE typnamespace = 'public'::regnamespace AND typrelid = 0""",
}


def schema(engine: sa.Engine) -> dict[str, Any]:
    """The schema as SQLAlchemy inspects it (table by table) and as the catalog states it (every
    object's definition, white space collapsed: SQLite keeps an ALTER's text as it was typed),
    and the rows of every table."""
    inspector = sa.inspect(engine)
    tables = {
        name: {
            "columns": [{k: str(v) for k, v in c.items()} for c in inspector.get_columns(name)],
            "primary key": inspector.get_pk_constraint(name),
            "foreign keys": inspector.get_foreign_keys(name),
            "indexes": inspector.get_indexes(name),
            "unique": inspector.get_unique_constraints(name),
            "checks": inspector.get_check_constraints(name),
        }
        for name in inspector.get_table_names()
    }
    with engine.connect() as conn:
        catalog = sorted(
            (kind, name, " ".join(definition.split()))
            for kind, name, definition in conn.exec_driver_sql(CATALOG[engine.dialect.name])
        )
        rows = {name: conn.exec_driver_sql(f"SELECT * FROM {name}").all() for name in tables}
    return {"tables": tables, "views": sorted(inspector.get_view_names()), "catalog": catalog, "rows": rows}


def test_a_new_archive_gets_the_schema_the_migrations_build(db_url: str, tmp_path: Path) -> None:
    """ensure_schema makes an empty database's schema in one step, without Alembic (db.create_head):
    it must be the very schema that migrations 0001 to head build, and Alembic must take it on."""
    migrated = db.make_engine(db.parse_url(db_url))
    db.upgrade(migrated)
    backend = migrated.dialect.name
    with scratch_database(backend, tmp_path / "fresh.db") as url:
        fresh = db.make_engine(db.parse_url(url))
        assert db.ensure_schema(fresh, migrate=True) == "empty"
        built, made = schema(migrated), schema(fresh)
        assert made["rows"]["alembic_version"] == [(db.HEAD,)]
        assert made["tables"].keys() == built["tables"].keys() >= TABLES
        for name, table in made["tables"].items():
            assert table == built["tables"][name], name
        assert made == built
        db.downgrade(fresh, "base")  # Alembic takes it from there
        assert tables(fresh) == set()
        fresh.dispose()
    migrated.dispose()


def test_a_database_holding_anything_is_migrated_not_created_in_one_step(db_url: str) -> None:
    engine = db.make_engine(db.parse_url(db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (x INTEGER)")
    assert not db.create_head(engine)
    assert tables(engine) == {"notes"}
    assert db.ensure_schema(engine, migrate=True) == "empty"  # by the migrations, beside the table
    assert tables(engine) >= TABLES | {"notes"}
    engine.dispose()


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
