"""Engines, schema migrations and the database side of a run."""

import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from archiver.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration. Kept here so that a run on an up-to-date archive need not import Alembic
# (a third of the start-up time); tests/test_db.py checks it against migrations/versions.
HEAD = "0016"

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def resource_path(name: str) -> Path:
    """migrations/ and sql/ ship inside the wheel; in a source checkout they sit beside the package."""
    packaged = resources.files("archiver") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


class JSONText(str):
    """A JSON column's value already serialized to its text: bound as it is."""


def to_json(value: Any) -> str:
    """JSON text, fast (orjson); integers beyond 64 bits or lone surrogates take the stdlib's way.
    The engines' JSON serializer: a JSONText is bound as it is."""
    if type(value) is JSONText:
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def parse_url(value: str) -> URL:
    """A SQLAlchemy URL, or a plain path meaning a SQLite file; `postgresql://` uses psycopg 3."""
    if "://" not in value:
        if value in ("", ":memory:"):
            raise ConfigError(f"{value!r} is not a file: give a file path such as archive.db")
        return URL.create("sqlite", database=value)
    try:
        url = make_url(value)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(f"not a database URL or file path: {masked(value)!r}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_file(masked(value), url)
    return url


def masked(value: str) -> str:
    """A URL as typed, with any password in it shown as ***."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


def ensure_sqlite_file(value: str, url: URL) -> None:
    """Refuse `sqlite://demo.db` (two slashes: demo.db would be a host) and in-memory databases,
    which would sync "successfully" and keep nothing."""
    if url.host or url.port:
        name = (url.host or "") + ("/" + url.database if url.database else "")
        raise ConfigError(
            f"{value!r} names a host, not a file: a SQLite URL has three slashes "
            f"(sqlite:///{name}) or four for an absolute path, or give the plain path {name}"
        )
    if sqlite_path(url) is None or url.query.get("mode") == "memory":
        raise ConfigError(
            f"{value!r} is an in-memory database, which keeps nothing: give a file path such as archive.db"
        )


def show_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, *, read_only: bool = False) -> Engine:
    """An engine with the archive's settings; SQLite writers take the write lock at BEGIN."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        # Wait for a row lock as long as SQLite waits for its write lock, then fail cleanly.
        options = f"-c lock_timeout={BUSY_TIMEOUT_MS}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        # A SQL_ASCII database would send text as bytes: always talk UTF-8, whatever the server's encoding.
        args = {"options": options, "client_encoding": "utf8"}
        try:
            return sa.create_engine(url, hide_parameters=True, json_serializer=to_json, connect_args=args)
        except ImportError as e:
            raise ConfigError(
                "PostgreSQL needs psycopg 3: pip install '.[postgres]' in archiver's source tree, "
                f"or pip install 'psycopg[binary]' ({e})"
            ) from None
    if backend != "sqlite":
        raise ConfigError(f"archiver stores into SQLite or PostgreSQL, not {backend}")
    path = sqlite_path(url)
    if path and read_only:
        url = read_only_url(Path(path))
    elif path:
        ensure_private_file(Path(path))
        ensure_writable(Path(path))
    engine = sa.create_engine(url, hide_parameters=True, json_serializer=to_json)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        # json_extract gives an escaped lone surrogate as bytes that are not UTF-8: U+FFFD for them
        dbapi_conn.text_factory = lambda data: data.decode(errors="replace")
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


def sqlite_path(url: URL) -> str | None:
    """The archive's file, also for `sqlite:///file:PATH?mode=ro&uri=true`; None in memory."""
    path = url.database or ""
    if url.query.get("uri"):
        path = unquote(path.removeprefix("file:"))
    return None if path in ("", ":memory:") else path


def read_only_url(path: Path) -> URL:
    """Open the archive for reading without writing anything, also for a user who may only read it.

    mode=ro never writes the archive. In WAL mode a reader also needs the -shm index: SQLite uses an
    existing one read-only, but would create a missing -shm (and -wal) beside the archive, which a
    user who cannot write the archive must not do. With no -shm, no connection is open and the -wal
    is empty or absent, so immutable=1 reads the file alone (sqlite.org/wal.html#readonly); its
    caveat: a sync that starts during the read may change the file under it (see the README).
    """
    if not path.exists():
        raise ConfigError(f"no archive at {path}: run `archiver sync` first")
    if not os.access(path, os.R_OK):
        mode = path.stat().st_mode & 0o777
        raise DatabaseError(
            f"cannot read the archive {path} (mode {mode:o}): this user is not allowed to; "
            "see the README's Read-only access"
        )
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    query = {"mode": "ro", "uri": "true"}
    if shm.exists() and not os.access(shm, os.R_OK):
        raise DatabaseError(
            f"cannot read {shm}: give it the archive's read permission (chmod/chgrp it like {path})"
        )
    if not shm.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        if wal.exists() and wal.stat().st_size:
            raise DatabaseError(
                f"{wal} holds changes not yet in {path} and {shm} is missing: run a sync to merge them"
            )
        query["immutable"] = "1"
    return URL.create("sqlite", database="file:" + quote(str(path)), query=query)


def ensure_writable(path: Path) -> None:
    """Refuse, before SQLite creates anything, an archive this user cannot write; repair our own
    -wal/-shm/.lock files whose mode would stop the run (SQLite gives -wal/-shm the archive's mode)."""
    mode = path.stat().st_mode & 0o777
    sidecars = [Path(f"{path}{end}") for end in ("-wal", "-shm", ".lock")]
    if not os.access(path, os.W_OK):
        raise DatabaseError(
            f"the archive {path} is not writable by this user (mode {mode:o}): nothing was written; "
            f"make it writable, and {sidecars[0].name} and {sidecars[1].name} too if they exist"
        )
    missing = [p.name for p in sidecars if not p.exists()]
    if missing and not os.access(path.parent, os.W_OK | os.X_OK):
        raise DatabaseError(
            f"cannot create {', '.join(missing)}: the directory {path.parent} is not writable"
        )
    for side in sidecars:
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):
            if side.stat().st_uid != os.geteuid():
                raise DatabaseError(f"{side} is not writable by this user: remove it while no archiver runs")
            old, new = side.stat().st_mode & 0o777, mode & 0o666 | 0o600
            side.chmod(new)
            log.warning("%s was not writable by its owner (mode %o): set it to %o", side, old, new)


def ensure_private_file(path: Path) -> None:
    """Create a new archive as 0600 (-wal and -shm copy its mode); warn about one every user of
    the machine may read (a group that may read it is how the README shares it with auditors)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise DatabaseError(f"cannot create the archive {path}: {e.strerror}") from e
    mode = path.stat().st_mode
    if mode & stat.S_IRWXO:
        log.warning("archive %s is readable by others (mode %o); chmod 600 it", path, mode & 0o777)


def alembic_config(conn: Connection) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_path("migrations")))
    cfg.attributes["connection"] = conn
    return cfg


def current(conn: Connection) -> str | None:
    """The schema revision, read without Alembic; None for a database without the archive."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_archive(conn: Connection) -> None:
    if current(conn) is None:
        raise ConfigError("the database holds no archive yet: run `archiver sync` first")


def head() -> str:
    return HEAD


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with migrating(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with migrating(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for the migrations; on SQLite with foreign keys off, and checked before commit.

    A batch migration rebuilds a table by dropping it: with foreign keys on, that drop fires the
    children's ON DELETE (SET NULL would empty every job's link to its sync run).
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # a no-op inside a transaction: set it on the idle connection
            conn.connection.cursor().execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all() if sqlite else []
                if broken:
                    table, rowid, parent = broken[0][:3]
                    raise DatabaseError(
                        f"migration rolled back: {len(broken)} rows would reference missing rows "
                        f"(first: {table} rowid {rowid} -> {parent})"
                    )
        finally:
            if sqlite:
                conn.connection.cursor().execute("PRAGMA foreign_keys = ON")


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
