"""Engines, schema migrations and the database side of a run."""

import logging
import os
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from archiver.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def resource_path(name: str) -> Path:
    """migrations/ and sql/ ship inside the wheel; in a source checkout they sit beside the package."""
    packaged = resources.files("archiver") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def parse_url(value: str) -> URL:
    """A SQLAlchemy URL, or a plain path meaning a SQLite file; `postgresql://` uses psycopg 3."""
    if "://" not in value:
        return URL.create("sqlite", database=value)
    try:
        url = make_url(value)
    except sa.exc.ArgumentError as e:
        raise ConfigError(f"not a database URL or file path: {value!r}") from e
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def show_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, *, read_only: bool = False) -> Engine:
    """An engine with the archive's settings; SQLite writers take the write lock at BEGIN."""
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, hide_parameters=True, pool_pre_ping=False)
    path = url.database
    if path and path != ":memory:" and not read_only:
        ensure_private_file(Path(path))
    engine = sa.create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if read_only:
            cur.execute("PRAGMA query_only = ON")
        else:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once when another
        # connection committed in between, ignoring busy_timeout; IMMEDIATE waits instead.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def ensure_private_file(path: Path) -> None:
    """Create a new archive as 0600 (-wal and -shm copy its mode); warn about an exposed one."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise DatabaseError(f"cannot create the archive {path}: {e.strerror}") from e
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("archive %s is readable by others (mode %o); chmod 600 it", path, mode & 0o777)


def alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resource_path("migrations")))
    cfg.attributes["connection"] = conn
    return cfg


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    return ScriptDirectory(str(resource_path("migrations"))).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def ensure_schema(engine: Engine, migrate: bool) -> str | None:
    """Bring the schema to head, or refuse when migrating is off; returns the old revision if it moved."""
    with engine.connect() as conn:
        now = current(conn)
    target = head()
    if now == target:
        return None
    if not migrate:
        raise ConfigError(
            f"the archive's schema is at {now or 'nothing'}, not {target}: "
            "run `archiver db upgrade` or drop --no-migrate"
        )
    upgrade(engine)
    return now or "empty"


def database_error(e: DBAPIError, where: str = "") -> DatabaseError:
    """One line from the driver's message: never the statement or its parameters."""
    lines = str(e.orig).strip().splitlines() if e.orig is not None else []
    first = lines[0] if lines else type(e).__name__
    return DatabaseError(f"database{' ' + where if where else ''}: {first}")
