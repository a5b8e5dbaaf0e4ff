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
from urllib.parse import urlsplit

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
  PORTKEY_CUSTOM_HOST           x-portkey-custom-host (base URL including /v1)
One of PORTKEY_VIRTUAL_KEY, PORTKEY_PROVIDER or PORTKEY_CONFIG is required, and
PORTKEY_API_KEY is too for Portkey's hosted API (*.portkey.ai).

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
    handler.setFormatter(UtcFormatter("%(asctime)s%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "archiver", False)]
    handler.archiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)


STAMP = "%Y-%m-%dT%H:%M:%SZ "


def stamping() -> bool:
    """--timestamps auto (the default): on stderr lines when it is not a terminal (a log, cron mail)."""
    ctx = click.get_current_context(silent=True)
    mode = ctx.meta.get("archiver.timestamps", "auto") if ctx else "auto"
    return mode == "always" or (mode == "auto" and not sys.stderr.isatty())


def stamp() -> str:
    """A UTC timestamp to start a stderr line with, or nothing (see stamping())."""
    return datetime.now(UTC).strftime(STAMP) if stamping() else ""


class UtcFormatter(logging.Formatter):
    """Puts the record's own time, as stamp() would, where %(asctime)s is."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(STAMP, time.gmtime(record.created)) if stamping() else ""


def say(message: str) -> None:
    """A line for the user on stderr, redacted like the logs, timestamped unless on a terminal."""
    for secret in redact.secrets:
        message = message.replace(secret, "[redacted]")
    lead = message[: len(message) - len(message.lstrip("\n"))]
    click.echo(lead + stamp() + message.lstrip("\n"), err=True)


def note(message: str) -> None:
    """A line that only says things went well: --quiet drops it (cron mails only trouble)."""
    ctx = click.get_current_context(silent=True)
    if not (ctx and ctx.meta.get("archiver.quiet")):
        say(message)


def exit_code(e: BaseException) -> int:
    """The one place that maps an error to its exit code (documented in ENV_HELP and the README)."""
    if isinstance(e, ArchiverError):
        return e.exit_code
    if isinstance(e, Interrupted):
        return 128 + e.signum
    return 130  # KeyboardInterrupt: SIGINT


class Group(click.Group):
    """Turns ArchiverError into one line and its exit code; bugs keep their traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as e:
            say(f"archiver: error: {e}")
            ctx.exit(exit_code(e))
        except KeyboardInterrupt as e:
            say("archiver: interrupted by SIGINT")
            ctx.exit(exit_code(e))
        except Interrupted as e:
            say(f"archiver: interrupted by {signal.Signals(e.signum).name}")
            ctx.exit(exit_code(e))


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


def set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """-v and -q count wherever they are given, before or after the subcommand (`archiver sync -v`)."""
    if param.name == "verbose":
        ctx.meta["archiver.verbose"] = ctx.meta.get("archiver.verbose", 0) + value
    else:
        ctx.meta["archiver.quiet"] = ctx.meta.get("archiver.quiet", False) or value
    setup_logging(ctx.meta.get("archiver.verbose", 0))


def output_options(f: Any) -> Any:
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=set_output,
        help="Print nothing on success; errors and warnings still go to stderr.",
    )(f)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=set_output,
        help="-v for INFO logs, -vv for DEBUG, on stderr.",
    )(f)


@click.group(cls=Group, epilog=ENV_HELP)
@click.version_option(__version__, prog_name="archiver")
@output_options
@click.option(
    "--timestamps",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    envvar="ARCHIVER_TIMESTAMPS",
    show_envvar=True,
    show_default=True,
    expose_value=False,
    callback=lambda ctx, _param, value: ctx.meta.__setitem__("archiver.timestamps", value),
    help="UTC timestamps on stderr lines; auto: unless stderr is a terminal (never: journald adds its own).",
)
def cli() -> None:
    """Keep a complete, queryable history of fine-tuning jobs from Portkey.

    On stderr, lines carry a UTC timestamp unless stderr is a terminal.

    \b
    Example:
      archiver sync      # with PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY exported
    """


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
    if not re.match(r"https?://[^/@]+(/|$)", base_url):
        raise ConfigError("PORTKEY_BASE_URL must be an http(s) URL without credentials")
    ensure_portkey_configured(base_url, headers)
    return Settings(base_url=base_url, headers=headers, backoff_base=retry_backoff, **kw)


def ensure_portkey_configured(base_url: str, headers: dict[str, str]) -> None:
    """Everything missing in one message, before the archive is touched. Portkey's hosted API
    needs PORTKEY_API_KEY; a self-hosted gateway may not, so there it stays optional."""
    missing = []
    hosted = (urlsplit(base_url).hostname or "").endswith("portkey.ai")
    if hosted and "x-portkey-api-key" not in headers:
        missing.append("PORTKEY_API_KEY")
    if "x-portkey-virtual-key" not in headers and not any(secret_env(v) for v in ROUTING_VARS):
        missing.append(
            "one of PORTKEY_VIRTUAL_KEY (or PORTKEY_PROVIDER_VIRTUAL_KEY), PORTKEY_PROVIDER or PORTKEY_CONFIG"
        )
    if missing:
        raise ConfigError(
            f"Portkey is not configured: set {' and '.join(missing)} (see archiver sync --help)"
        )


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
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout, on failure too."
)
@output_options
def sync_command(database: str, limit: int, full: bool, no_migrate: bool, as_json: bool, **http: Any) -> None:
    """Copy new and changed fine-tuning jobs into the archive (all of them with --full).

    Incremental by default: it stops once it reaches jobs already archived in a final state,
    after seeing again every job the archive holds in flight. Only one sync runs at a time.

    \b
    Example:
      archiver sync --db archive.db      # PORTKEY_* exported beforehand
    """
    report: dict[str, Any] = {}  # what --json prints, whatever happens
    try:
        result = run_sync(database, limit, full, no_migrate, report, **http)
    except (ArchiverError, Interrupted, KeyboardInterrupt) as e:
        if as_json:
            failed = "interrupted" if isinstance(e, Interrupted | KeyboardInterrupt) else "failed"
            error = str(e) if isinstance(e, ArchiverError) else "interrupted by a signal"
            click.echo(json.dumps({"status": failed, "error": error, "exit_code": exit_code(e), **report}))
        raise
    rejected = None
    if result.rejected:
        one = result.rejected == 1
        rejected = RejectedItems(
            f"{plural(result.rejected, 'list item')} {'was not a job' if one else 'were not jobs'}; "
            f"{'it is' if one else 'they are'} kept in rejected_items"
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "succeeded",
                    "error": str(rejected) if rejected else None,
                    "exit_code": exit_code(rejected) if rejected else 0,
                    **report,
                    "seconds": round(result.elapsed, 3),
                }
            )
        )
    if rejected:
        raise rejected


def run_sync(
    database: str, limit: int, full: bool, no_migrate: bool, report: dict[str, Any], **http: Any
) -> SyncResult:
    """The run itself; `report` gains the run's id, mode and counters once the run has started."""
    settings = load_settings(**http)
    stop_on_signals()
    with open_engine(database) as engine, db.run_lock(engine):
        migrated = db.ensure_schema(engine, migrate=not no_migrate)
        if migrated:
            note(f"Migrated the archive's schema from {migrated} to {db.head()}")
        where = db.show_url(engine.url)
        with engine.connect() as conn:
            previous = reports.last_run(conn)
        with make_api(settings) as api:
            quiet = click.get_current_context().meta.get("archiver.quiet")
            on_page = progress() if sys.stderr.isatty() and not quiet else None
            try:
                result = sync(
                    api, engine, full=full, limit=limit, provider=routing_provider(), on_page=on_page
                )
            except (ArchiverError, Interrupted, KeyboardInterrupt):
                report.update(recorded_run(engine, previous.id if previous else None, where))
                raise
    note(summary(result, where))
    report.update(run_id=result.run_id, mode=result.mode, **result.counters(), database=where)
    return result


def recorded_run(engine: Engine, previous: int | None, where: str) -> dict[str, Any]:
    """The id, mode and counters the failed run recorded, if it got as far as starting."""
    try:
        with engine.connect() as conn:
            run = reports.last_run(conn)
    except DBAPIError:  # the archive may be what failed
        return {}
    if run is None or run.id == previous:
        return {}
    keys = (
        "pages",
        "requests",
        "jobs_seen",
        "jobs_inserted",
        "jobs_updated",
        "jobs_unchanged",
        "jobs_rejected",
    )
    return {"run_id": run.id, "mode": run.mode, **{k: run._mapping[k] for k in keys}, "database": where}


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
        f"{end}Synced {plural(r.seen, 'job')} ({r.inserted:,} new, {r.updated:,} changed, "
        f"{r.unchanged:,} unchanged{rejected}) in {plural(r.pages, 'page')}, "
        f"{plural(r.requests, 'request')}, into {where} in {human(r.elapsed)}"
    )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def human(seconds: float) -> str:
    """A duration in the unit a person reads best: 85 ms, 12.3 s, 4.5 min, 3.2 h, 1.5 d."""
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    for size, unit, upto in ((1, "s", 60), (60, "min", 60), (3600, "h", 24)):
        if round(seconds / size, 1) < upto:
            return f"{round(seconds / size, 1):g} {unit}"
    return f"{round(seconds / 86400, 1):g} d"


@cli.group("db")
@output_options
def db_group() -> None:
    """Manage the archive's schema."""


@db_group.command("upgrade")
@output_options
@db_option
def db_upgrade(database: str) -> None:
    """Apply pending schema migrations.

    \b
    Example:
      archiver db upgrade --db postgresql://archiver@db.internal/archive
    """
    with open_engine(database) as engine, db.run_lock(engine):  # never beside a sync
        db.upgrade(engine)
        with engine.connect() as conn:
            note(f"Schema at {db.current(conn)} (head) in {db.show_url(engine.url)}")


@db_group.command("current")
@output_options
@db_option
def db_current(database: str) -> None:
    """Print the schema revision of the archive.

    \b
    Example:
      archiver db current --db archive.db
    """
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        now = db.current(conn)
    head = db.head()
    click.echo(f"{now or 'empty'}{' (head)' if now == head else f' (head is {head})'}")


@cli.command("runs")
@output_options
@db_option
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, reports.MAX_INT),
    help="How many runs to show.",
)
@click.option("--format", "fmt", type=click.Choice(reports.FORMATS), default="table", show_default=True)
def runs_command(database: str, limit: int, fmt: str) -> None:
    """List recent sync runs, newest first.

    \b
    Example:
      archiver runs --limit 5
    """
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        db.ensure_archive(conn)
        columns, rows = reports.run_report(conn, "sync_health", {"limit": limit})
    click.echo(reports.render(columns, rows, fmt))


class Age(click.ParamType):
    """A duration like 90m, 2h or 1d (plain numbers are seconds), in seconds."""

    name = "age"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if not match:
            self.fail(f"{value!r} is not an age: use a number with s, m, h or d, e.g. 90m or 2h", param, ctx)
        return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


@cli.command("status")
@output_options
@db_option
@click.option(
    "--max-age",
    type=Age(),
    default=None,
    envvar="ARCHIVER_MAX_AGE",
    show_envvar=True,
    help="STALE (exit 1) if the last successful sync is older, e.g. 2h, 30m, 1d.",
)
def status_command(database: str, max_age: float | None) -> None:
    """Say OK, STALE or FAILED, and why: the archive's last successful sync and last run.

    Exit 0 when OK; 1 when STALE (never synced, or older than --max-age) or FAILED
    (the last run failed or was interrupted).

    \b
    Example (for monitoring):
      archiver status --max-age 2h || echo "archive is stale"
    """
    with open_engine(database, read_only=True) as engine:
        with engine.connect() as conn:
            synced = db.current(conn) is not None
            last, ok = (
                (reports.last_run(conn), reports.last_run(conn, "succeeded")) if synced else (None, None)
            )
        killed = last is not None and last.status == "running" and not db.sync_running(engine)
    lines = health(last, ok, max_age, time.time(), killed)
    click.echo("\n".join(lines))
    if not lines[0].startswith("OK"):
        sys.exit(1)


def health(last: Any, ok: Any, max_age: float | None, now: float, killed: bool = False) -> list[str]:
    """The verdict first (OK, STALE or FAILED) and why; then the last success, if it is not the verdict.

    `killed`: the last run is marked running but no sync holds the lock.
    """
    limit = f" (max age {human(max_age)})" if max_age is not None else ""
    if ok is None:
        success = "never synced successfully"
    else:
        age = now - (ok.finished_at or ok.started_at)
        success = (
            f"last successful sync {human(age)} ago{limit}: run {ok.id} at {reports.utc(ok.finished_at)}"
        )
    if last is not None and (killed or last.status not in ("succeeded", "running")):
        if killed:
            ago = human(now - last.started_at)
            why = f"started {ago} ago and is marked running, but no sync holds the lock: it was killed"
        else:
            ago = human(now - (last.finished_at or last.started_at))
            why = f"{last.status} {ago} ago: {last.error or 'no error recorded'}"
        return [f"FAILED: last run {last.id} {why}", success]
    if ok is None or (max_age is not None and age > max_age):
        return [f"STALE: {success}"]
    return [f"OK: {success}"]


def format_option(f: Any) -> Any:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(reports.FORMATS),
        default="table",
        show_default=True,
        help="table for people; csv, json or markdown for machines.",
    )(f)


@cli.command("report")
@output_options
@click.argument("name", required=False)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A report parameter; repeatable.")
@click.option("--since", help="Same as --param since=...: from this date (UTC), e.g. 2026-01-01.")
@click.option("--until", help="Same as --param until=...: before this date (UTC).")
@format_option
@db_option
def report_command(
    name: str | None, params: tuple[str, ...], since: str | None, until: str | None, fmt: str, database: str
) -> None:
    """Run a named report, or list them all, with their parameters, when no name is given.

    Parameters that are not required have defaults: since and until span all time,
    now is the current time; a value of the wrong type exits 2 naming the parameter.

    \b
    Examples:
      archiver report
      archiver report monthly_activity --since 2026-01-01 --format csv
      archiver report job_timeline --param job_id=ftjob-abc123
    """
    if name is None:
        listing = [
            (n, " ".join(p.usage() for p in reports.parameters(n)), reports.describe(n))
            for n in reports.names()
        ]
        click.echo(reports.render(["report", "parameters", "answers"], listing, fmt))
        return
    given = dict(key_value(p) for p in params)
    given.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
    values = reports.resolve(name, given)  # a bad name or value fails before the database is opened
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        db.ensure_archive(conn)
        columns, rows = reports.run_report(conn, name, values)
    click.echo(reports.render(columns, rows, fmt))


def key_value(param: str) -> tuple[str, str]:
    key, sep, value = param.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{param!r} is not KEY=VALUE", param_hint="--param")
    return key, value


@cli.command("query")
@output_options
@click.argument("sql")
@format_option
@db_option
def query_command(sql: str, fmt: str, database: str) -> None:
    """Run one read-only SQL statement against the archive.

    \b
    Example:
      archiver query "SELECT status, count(*) FROM jobs GROUP BY status" --format csv
    """
    if not sql.strip():
        raise click.BadParameter("give one SQL statement", param_hint="SQL")
    with open_engine(database, read_only=True) as engine, engine.connect() as conn:
        columns, rows = reports.run_query(conn, sql)
    click.echo(reports.render(columns, rows, fmt))
