"""The command line: options and environment in, one call, output and exit codes out."""

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver import __version__, db
from archiver.client import Settings, make_api
from archiver.errors import ArchiverError, ConfigError
from archiver.sync import SyncResult, sync

log = logging.getLogger("archiver")

# Environment variable -> header. Secrets are read from the environment only, never from argv.
HEADER_VARS = {
    "PORTKEY_API_KEY": "x-portkey-api-key",
    "PORTKEY_VIRTUAL_KEY": "x-portkey-virtual-key",
    "PORTKEY_PROVIDER_VIRTUAL_KEY": "x-portkey-virtual-key",
    "PORTKEY_PROVIDER": "x-portkey-provider",
    "PORTKEY_PROVIDER_API_KEY": "authorization",
    "PORTKEY_CONFIG": "x-portkey-config",
    "PORTKEY_CUSTOM_HOST": "x-portkey-custom-host",
}
SECRET_VARS = (
    "PORTKEY_API_KEY",
    "PORTKEY_VIRTUAL_KEY",
    "PORTKEY_PROVIDER_VIRTUAL_KEY",
    "PORTKEY_PROVIDER_API_KEY",
    "PORTKEY_CONFIG",
)
ROUTING_VARS = ("PORTKEY_VIRTUAL_KEY", "PORTKEY_PROVIDER", "PORTKEY_CONFIG")

ENV_HELP = """
\b
Portkey settings, read from the environment only (an empty variable counts as unset):
  PORTKEY_API_KEY               x-portkey-api-key
  PORTKEY_VIRTUAL_KEY           x-portkey-virtual-key (or PORTKEY_PROVIDER_VIRTUAL_KEY)
  PORTKEY_PROVIDER              x-portkey-provider, e.g. openai or @provider-slug
  PORTKEY_PROVIDER_API_KEY      Authorization: Bearer ... (with PORTKEY_PROVIDER)
  PORTKEY_CONFIG                x-portkey-config (a config id or JSON)
  PORTKEY_CUSTOM_HOST           x-portkey-custom-host (base URL including /v1)
One of PORTKEY_VIRTUAL_KEY, PORTKEY_PROVIDER or PORTKEY_CONFIG is required.

\b
Exit codes: 0 ok, 1 failed (archive intact), 2 usage or configuration,
3 completed with rejected items, 4 database locked/full/read-only,
75 try later (another sync runs, or the API asked to wait too long),
130/143 interrupted by SIGINT/SIGTERM.
"""


class RedactSecrets(logging.Filter):
    """Replaces the literal secret values in every record, whichever logger emitted it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "[redacted]")
        message = re.sub(r"(?i)bearer\s+\S+", "Bearer [redacted]", message)
        record.msg, record.args = message, None
        return True


redact = RedactSecrets()


def setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redact)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "archiver", False)]
    handler.archiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)


def say(message: str) -> None:
    """A line for the user on stderr, redacted like the logs."""
    for secret in redact.secrets:
        message = message.replace(secret, "[redacted]")
    click.echo(message, err=True)


class Group(click.Group):
    """Turns ArchiverError into one line and its exit code; bugs keep their traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as e:
            say(f"archiver: error: {e}")
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            say("archiver: interrupted")
            ctx.exit(130)


@click.group(cls=Group, epilog=ENV_HELP)
@click.version_option(__version__, prog_name="archiver")
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG, on stderr.")
def cli(verbose: int) -> None:
    """Keep a complete, queryable history of fine-tuning jobs from Portkey.

    \b
    Example:
      PORTKEY_API_KEY=... PORTKEY_VIRTUAL_KEY=... archiver sync
    """
    setup_logging(verbose)


def db_option(f: Any) -> Any:
    return click.option(
        "--db",
        "database",
        default="archive.db",
        envvar="ARCHIVER_DATABASE_URL",
        show_envvar=True,
        show_default=True,
        help="SQLAlchemy URL (sqlite:///..., postgresql://...) or a SQLite file path.",
    )(f)


def secret_env(name: str) -> str | None:
    return os.environ.get(name) or None


def load_settings(base_url: str, **kw: Any) -> Settings:
    """Portkey headers from the environment; the secrets join the log redaction first."""
    headers: dict[str, str] = {}
    for var, header in HEADER_VARS.items():
        value = secret_env(var)
        if value is None:
            continue
        if not value.isprintable() or not value.isascii():
            raise ConfigError(f"{var} holds characters that cannot go into an HTTP header")
        if var in SECRET_VARS:
            redact.secrets.add(value)
        headers[header] = f"Bearer {value}" if header == "authorization" else value
    if "x-portkey-virtual-key" not in headers and not any(secret_env(v) for v in ROUTING_VARS):
        raise ConfigError(
            "no Portkey routing configured: set PORTKEY_VIRTUAL_KEY (or PORTKEY_PROVIDER_VIRTUAL_KEY), "
            "PORTKEY_PROVIDER or PORTKEY_CONFIG"
        )
    if not re.match(r"https?://[^/@]+(/|$)", base_url):
        raise ConfigError("PORTKEY_BASE_URL must be an http(s) URL without credentials")
    return Settings(base_url=base_url, headers=headers, **kw)


@contextmanager
def open_engine(database: str, *, read_only: bool = False) -> Iterator[Engine]:
    url = db.parse_url(database)
    if url.password:
        redact.secrets.add(url.password)
    engine = db.make_engine(url, read_only=read_only)
    try:
        yield engine
    except DBAPIError as e:
        raise db.database_error(e, db.show_url(url)) from None
    finally:
        engine.dispose()


@cli.command("sync", epilog=ENV_HELP)
@db_option
@click.option(
    "--base-url",
    default="https://api.portkey.ai/v1",
    envvar="PORTKEY_BASE_URL",
    show_envvar=True,
    show_default=True,
    help="The gateway's base URL; self-hosted: http://localhost:8787/v1.",
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    envvar="ARCHIVER_LIMIT",
    show_envvar=True,
    type=click.IntRange(1, 10_000),
    help="Jobs per page to ask for.",
)
@click.option(
    "--no-migrate", is_flag=True, help="Refuse to run on an outdated schema instead of migrating it."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    envvar="ARCHIVER_TIMEOUT",
    show_envvar=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for a response (connect: at most 5).",
)
@click.option(
    "--max-retries",
    default=5,
    show_default=True,
    envvar="ARCHIVER_MAX_RETRIES",
    show_envvar=True,
    type=click.IntRange(0, 20),
    help="Retries per request for 408/409/429/5xx and network failures.",
)
@click.option(
    "--retry-after-cap",
    default=60.0,
    show_default=True,
    envvar="ARCHIVER_RETRY_AFTER_CAP",
    show_envvar=True,
    type=click.FloatRange(0),
    help="Longest Retry-After to honour; a longer one ends the run with exit 75.",
)
@click.option(
    "--max-time",
    default=None,
    envvar="ARCHIVER_MAX_TIME",
    show_envvar=True,
    type=click.FloatRange(1),
    help="Give up retrying once the run has taken this many seconds.",
)
@click.option(
    "--ca-bundle",
    default=None,
    envvar="ARCHIVER_CA_BUNDLE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of a private CA to trust.",
)
def sync_command(
    database: str,
    base_url: str,
    limit: int,
    no_migrate: bool,
    as_json: bool,
    timeout: float,
    max_retries: int,
    retry_after_cap: float,
    max_time: float | None,
    ca_bundle: str | None,
) -> None:
    """Copy every fine-tuning job into the archive.

    \b
    Example:
      PORTKEY_API_KEY=... PORTKEY_VIRTUAL_KEY=... archiver sync --db archive.db
    """
    settings = load_settings(
        base_url,
        timeout=timeout,
        max_retries=max_retries,
        retry_after_cap=retry_after_cap,
        max_time=max_time,
        ca_bundle=ca_bundle,
    )
    with open_engine(database) as engine:
        migrated = db.ensure_schema(engine, migrate=not no_migrate)
        if migrated:
            say(f"Migrated the archive's schema from {migrated} to {db.head()}")
        api = make_api(settings)
        try:
            result = sync(api, engine, limit=limit, on_page=progress() if sys.stderr.isatty() else None)
        finally:
            api.close()
        where = db.show_url(engine.url)
    say(summary(result, where))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "mode": result.mode,
                    **result.counters(),
                    "database": where,
                    "seconds": round(result.elapsed, 3),
                }
            )
        )


def progress() -> Any:
    def show(r: SyncResult) -> None:
        click.echo(
            f"\r{r.pages:,} pages, {r.seen:,} jobs ({r.inserted:,} new, {r.updated:,} changed)",
            err=True,
            nl=False,
        )

    return show


def summary(r: SyncResult, where: str) -> str:
    end = "\n" if sys.stderr.isatty() else ""
    return (
        f"{end}Synced {r.seen:,} jobs ({r.inserted:,} new, {r.updated:,} changed, {r.unchanged:,} unchanged) "
        f"in {r.pages:,} pages, {r.requests:,} requests, into {where} in {r.elapsed:.1f}s"
    )


@cli.group("db")
def db_group() -> None:
    """Manage the archive's schema."""


@db_group.command("upgrade")
@db_option
def db_upgrade(database: str) -> None:
    """Apply pending schema migrations.

    \b
    Example:
      archiver db upgrade --db postgresql://archiver@db.internal/archive
    """
    with open_engine(database) as engine:
        db.upgrade(engine)
        with engine.connect() as conn:
            say(f"Schema at {db.current(conn)} (head) in {db.show_url(engine.url)}")


@db_group.command("current")
@db_option
def db_current(database: str) -> None:
    """Print the schema revision of the archive.

    \b
    Example:
      archiver db current --db archive.db
    """
    with open_engine(database) as engine, engine.connect() as conn:
        now = db.current(conn)
    head = db.head()
    click.echo(f"{now or 'empty'}{' (head)' if now == head else f' (head is {head})'}")
