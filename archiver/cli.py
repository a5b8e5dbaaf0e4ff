"""The command line: options and environment in, one call, output and exit codes out."""

import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from archiver import __version__, db, reports
from archiver.client import Settings, make_api
from archiver.errors import ArchiverError, ConfigError, Interrupted, RejectedItems
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
  PORTKEY_CUSTOM_HOST           x-portkey-custom-host (the provider's base URL;
                                Vertex: no /v1; see the README's Providers)
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
            say("archiver: interrupted by SIGINT")
            ctx.exit(130)
        except Interrupted as e:
            say(f"archiver: interrupted by {signal.Signals(e.signum).name}")
            ctx.exit(128 + e.signum)


def stop_on_signals() -> None:
    """First SIGTERM/SIGINT: unwind (the page in flight rolls back, the run is recorded); second: exit now."""
    hit: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if hit:
            os._exit(128 + signum)
        hit.append(signum)
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.group(cls=Group, epilog=ENV_HELP)
@click.version_option(__version__, prog_name="archiver")
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG, on stderr.")
def cli(verbose: int) -> None:
    """Keep a complete, queryable history of fine-tuning jobs from Portkey.

    \b
    Example:
      archiver sync      # with PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY exported
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


def routing_provider() -> str:
    """The provider the routing names (the gateway's x-portkey-provider answer header wins)."""
    provider = secret_env("PORTKEY_PROVIDER")
    if provider and not provider.startswith("@"):
        return provider
    try:
        config = json.loads(secret_env("PORTKEY_CONFIG") or "null")
    except ValueError:
        return "unknown"  # a saved config's id
    named = config.get("provider") if isinstance(config, dict) else None
    return named if isinstance(named, str) and named else "unknown"


def load_settings(base_url: str, retry_backoff: float = 0.5, **kw: Any) -> Settings:
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
    return Settings(base_url=base_url, headers=headers, backoff_base=retry_backoff, **kw)


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


def setting(flag: str, default: Any, kind: Any, help: str, envvar: str | None = None) -> Any:
    """A long option with its environment variable (ARCHIVER_<NAME> unless given), both in --help."""
    envvar = envvar or "ARCHIVER_" + flag.lstrip("-").replace("-", "_").upper()
    return click.option(
        flag,
        default=default,
        type=kind,
        envvar=envvar,
        show_envvar=True,
        show_default=default is not None,
        help=help,
    )


@cli.command("sync", epilog=ENV_HELP)
@db_option
@setting(
    "--base-url",
    "https://api.portkey.ai/v1",
    str,
    "The gateway's base URL; self-hosted: http://localhost:8787/v1.",
    envvar="PORTKEY_BASE_URL",
)
@setting("--limit", 100, click.IntRange(1, 10_000), "Jobs per page to ask for.")
@setting("--timeout", 30.0, click.FloatRange(0.1), "Seconds to wait for a response (connect: at most 5).")
@setting("--max-retries", 5, click.IntRange(0, 20), "Retries per request: 408/409/429/5xx, network errors.")
@setting(
    "--retry-after-cap",
    60.0,
    click.FloatRange(0),
    "Longest Retry-After to honour; a longer one ends the run with exit 75.",
)
@setting("--retry-backoff", 0.5, click.FloatRange(0), "First retry waits up to this long; doubles each time.")
@setting("--max-time", None, click.FloatRange(1), "Stop retrying once the run has taken this many seconds.")
@setting("--ca-bundle", None, click.Path(exists=True, dir_okay=False), "PEM file of a private CA to trust.")
@click.option("--full", is_flag=True, help="Walk the whole history instead of stopping at known jobs.")
@click.option("--no-migrate", is_flag=True, help="Refuse an outdated schema instead of migrating it.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
def sync_command(database: str, limit: int, full: bool, no_migrate: bool, as_json: bool, **http: Any) -> None:
    """Copy new and changed fine-tuning jobs into the archive (all of them with --full).

    Incremental by default: it stops once it reaches jobs already archived in a final state,
    after seeing again every job the archive holds in flight. Only one sync runs at a time.

    \b
    Example:
      archiver sync --db archive.db      # PORTKEY_* exported beforehand
    """
    settings = load_settings(**http)
    stop_on_signals()
    with open_engine(database) as engine, db.run_lock(engine):
        migrated = db.ensure_schema(engine, migrate=not no_migrate)
        if migrated:
            say(f"Migrated the archive's schema from {migrated} to {db.head()}")
        with make_api(settings) as api:
            on_page = progress() if sys.stderr.isatty() else None
            result = sync(api, engine, full=full, limit=limit, provider=routing_provider(), on_page=on_page)
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
    if result.rejected:
        raise RejectedItems(f"{result.rejected:,} list items were not jobs; they are kept in rejected_items")


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
    rejected = f", {r.rejected:,} rejected" if r.rejected else ""
    return (
        f"{end}Synced {r.seen:,} jobs ({r.inserted:,} new, {r.updated:,} changed, {r.unchanged:,} unchanged"
        f"{rejected}) in {r.pages:,} pages, {r.requests:,} requests, into {where} in {r.elapsed:.1f}s"
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


@cli.command("runs")
@db_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many runs to show.")
@click.option("--format", "fmt", type=click.Choice(reports.FORMATS), default="table", show_default=True)
def runs_command(database: str, limit: int, fmt: str) -> None:
    """List recent sync runs, newest first.

    \b
    Example:
      archiver runs --limit 5
    """
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        db.ensure_archive(conn)
        columns, rows = reports.run_report(conn, "sync_health", {**ALL_TIME, "limit": limit})
    click.echo(reports.render(columns, rows, fmt))


def parse_age(value: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
    if not match:
        raise click.BadParameter("use a number with s, m, h or d, e.g. 90m or 2h")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


@cli.command("status")
@db_option
@click.option(
    "--max-age", default=None, help="Exit 1 if the last successful sync is older, e.g. 2h, 30m, 1d."
)
def status_command(database: str, max_age: str | None) -> None:
    """Print when the archive was last synced; exit 1 if that is too old or the last run failed.

    A route that cannot page (see the README's Providers) shows `coverage: partial: <why>`;
    that alone is not a failure.

    \b
    Example (for monitoring):
      archiver status --max-age 2h || echo "archive is stale"
    """
    limit = parse_age(max_age) if max_age else None
    with open_engine(database, read_only=True) as engine:
        with engine.connect() as conn:
            synced = db.current(conn) is not None
            last, ok = (
                (reports.last_run(conn), reports.last_run(conn, "succeeded")) if synced else (None, None)
            )
            partial = reports.partial_coverage(conn) if synced else []
        left_running = last is not None and last.status == "running" and not db.sync_running(engine)
    if ok is None:
        click.echo("never synced successfully")
    else:
        age = time.time() - (ok.finished_at or ok.started_at)
        click.echo(
            f"last successful sync: run {ok.id} at {reports.utc(ok.finished_at)} ({age / 60:.0f} min ago)"
        )
    for reason, since in partial:  # not a failure: the route cannot page (README: Providers)
        click.echo(f"coverage: partial: {reason} (since {reports.utc(since)})")
    if last is not None and last.status not in ("succeeded", "running"):
        click.echo(f"last run {last.id} {last.status}: {last.error}")
    if left_running and last is not None:
        click.echo(f"last run {last.id} is marked running but no sync holds the lock: it was killed")
    stale = ok is None or (limit is not None and age > limit)
    if stale or left_running or (last is not None and last.status not in ("succeeded", "running")):
        sys.exit(1)


END_OF_TIME = 253402300799  # 9999-12-31 23:59:59 UTC
ALL_TIME = {"since": 0, "until": END_OF_TIME, "now": int(time.time()), "limit": 1_000_000}


def format_option(f: Any) -> Any:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(reports.FORMATS),
        default="table",
        show_default=True,
        help="table for people; csv, json or markdown for machines.",
    )(f)


def epoch(value: str | None, default: int) -> int:
    """A date or ISO time, UTC unless it says otherwise, as Unix seconds."""
    if value is None:
        return default
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31 or 2026-01-31T12:00") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


@cli.command("report")
@click.argument("name", required=False)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A report parameter; repeatable.")
@click.option("--since", help="Only what was created on or after this date (UTC), e.g. 2026-01-01.")
@click.option("--until", help="Only what was created before this date (UTC).")
@format_option
@db_option
def report_command(
    name: str | None, params: tuple[str, ...], since: str | None, until: str | None, fmt: str, database: str
) -> None:
    """Run a named report, or list them all when no name is given.

    \b
    Examples:
      archiver report
      archiver report monthly_activity --since 2026-01-01 --format csv
      archiver report job_timeline --param job_id=ftjob-abc123
    """
    if name is None:
        click.echo(
            reports.render(["report", "answers"], [(n, reports.describe(n)) for n in reports.names()], fmt)
        )
        return
    values: dict[str, Any] = {
        "since": epoch(since, 0),
        "until": epoch(until, 253402300800) - 1,
        "now": int(time.time()),
    }
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{param!r} is not KEY=VALUE", param_hint="--param")
        values[key] = value
    reports.load(name)  # an unknown name fails before the database is opened
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        db.ensure_archive(conn)
        columns, rows = reports.run_report(conn, name, values)
    click.echo(reports.render(columns, rows, fmt))


@cli.command("query")
@click.argument("sql")
@format_option
@db_option
def query_command(sql: str, fmt: str, database: str) -> None:
    """Run one read-only SQL statement against the archive.

    \b
    Example:
      archiver query "SELECT status, count(*) FROM jobs GROUP BY status" --format csv
    """
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        columns, rows = reports.run_query(conn, sql)
    click.echo(reports.render(columns, rows, fmt))
