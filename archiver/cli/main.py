"""The command group: output options, errors turned into one line and an exit code, shared options."""

import gc
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from archiver import __version__, log
from archiver.errors import ArchiverError, Interrupted

if TYPE_CHECKING:
    from archiver.archive import Archive

# The commands import what they need when they run: `archiver --version` and `--help` load only
# click, and a sync loads neither the reports, the dashboard nor the demo. So these two are
# render.FORMATS and reports.MAX_INT, repeated (tests/test_cli.py checks they agree).
FORMATS = ("table", "csv", "json", "markdown")
MAX_INT = 2**63 - 1

ENV_HELP = """
\b
Portkey settings, read from the environment only (an empty variable counts as unset):
  PORTKEY_API_KEY               x-portkey-api-key
  PORTKEY_VIRTUAL_KEY           x-portkey-virtual-key (or PORTKEY_PROVIDER_VIRTUAL_KEY)
  PORTKEY_PROVIDER              x-portkey-provider, e.g. openai or @provider-slug
  PORTKEY_PROVIDER_API_KEY      Authorization: Bearer ... (with PORTKEY_PROVIDER)
  PORTKEY_CONFIG                x-portkey-config (a config id or JSON)
  PORTKEY_CUSTOM_HOST           x-portkey-custom-host (the provider's base URL; see the README)
One of PORTKEY_VIRTUAL_KEY, PORTKEY_PROVIDER or PORTKEY_CONFIG is required, and
PORTKEY_API_KEY is too for Portkey's hosted API (*.portkey.ai).

\b
Exit codes: 0 ok, 1 failed (archive intact), 2 usage or configuration,
3 completed with rejected items, 4 database locked/full/read-only,
5 completed but some in-flight jobs could not be refreshed, 6 verify: not intact,
75 try later (another sync runs, or the API asked to wait too long),
130/143 interrupted by SIGINT/SIGTERM.
"""


def meta(key: str, default: Any = None) -> Any:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(f"archiver.{key}", default) if ctx else default


def stamping() -> bool:
    # before the group's options are parsed (a usage error there), the environment still counts
    return log.stamps_on(meta("timestamps") or os.environ.get("ARCHIVER_TIMESTAMPS") or "auto")


def say(message: str) -> None:
    """A line for the user on stderr, redacted like the logs, timestamped unless on a terminal."""
    message = log.redact(message)
    lead = message[: len(message) - len(message.lstrip("\n"))]
    stamp = datetime.now(UTC).strftime(log.STAMP) if stamping() else ""
    click.echo(lead + stamp + message.lstrip("\n"), err=True)


def note(message: str) -> None:
    """A line that only says things went well: --quiet drops it (cron mails only trouble)."""
    if not meta("quiet"):
        say(message)


def exit_code(e: BaseException) -> int:
    """The one place that maps an error to its exit code (documented in ENV_HELP and the README)."""
    if isinstance(e, ArchiverError):
        return e.exit_code
    if isinstance(e, Interrupted):
        return 128 + e.signum
    return 130  # KeyboardInterrupt: SIGINT


# `archiver --help` lists the commands in the order a newcomer uses them, not alphabetically.
ORDER = (
    "sync",
    "routes",
    "status",
    "verify",
    "runs",
    "report",
    "query",
    "tables",
    "dashboard",
    "datasette-metadata",
    "demo",
    "db",
)


def usage_error(ctx: click.Context, e: click.UsageError) -> None:
    """A bad option or argument, the group's or a command's: one line, exit 2."""
    hint = f" (see {e.ctx.command_path} --help)" if e.ctx else ""
    say(f"archiver: error: {e.format_message()}{hint}")
    if e.ctx and e.ctx.info_name == "sync" and "--json" in sys.argv[1:]:  # promised on failure too
        import json

        error = log.redact(e.format_message() + hint)
        click.echo(json.dumps({"status": "failed", "error": error, "exit_code": 2}))
    ctx.exit(2)


class Group(click.Group):
    """Turns ArchiverError into one line and its exit code; bugs keep their traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:  # `archiver --bad sync`: one line too, not click's three
            usage_error(ctx, e)
            raise  # not reached: usage_error exits

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:  # `archiver db`: the group's help
            raise
        except click.UsageError as e:  # a subcommand's bad option: one line too, exit 2
            usage_error(ctx, e)
        except ArchiverError as e:
            say(f"archiver: error: {e}")
            ctx.exit(exit_code(e))
        except KeyboardInterrupt as e:
            say("archiver: interrupted by SIGINT")
            ctx.exit(exit_code(e))
        except Interrupted as e:
            say(f"archiver: interrupted by {signal.Signals(e.signum).name}")
            ctx.exit(exit_code(e))


def set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """-v and -q count wherever they are given, before or after the subcommand (`archiver sync -v`)."""
    if param.name == "verbose":
        ctx.meta["archiver.verbose"] = ctx.meta.get("archiver.verbose", 0) + value
    else:
        ctx.meta["archiver.quiet"] = ctx.meta.get("archiver.quiet", False) or value
    log.setup(ctx.meta.get("archiver.verbose", 0), stamping)


def set_timestamps(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """--timestamps before or after the command; given after it, it wins over the environment."""
    source = ctx.get_parameter_source(param.name or "")
    if ctx.parent is None or source is click.core.ParameterSource.COMMANDLINE:
        ctx.meta["archiver.timestamps"] = value


TIMESTAMPS_HELP = (
    "UTC timestamps on stderr lines; auto: unless stderr is a terminal (never: journald adds its own)."
)


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--timestamps",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        envvar="ARCHIVER_TIMESTAMPS",
        show_envvar=True,
        show_default=True,
        expose_value=False,
        is_eager=True,
        callback=set_timestamps,
        help=TIMESTAMPS_HELP,
    )(f)
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
    "--db",
    expose_value=False,
    metavar="TEXT",
    callback=lambda ctx, _param, value: ctx.meta.__setitem__("archiver.db", value),
    help="The archive, for commands given after it (they take --db too).",
)
def cli() -> None:
    """Keep a complete, queryable history of fine-tuning jobs from Portkey.

    On stderr, lines carry a UTC timestamp unless stderr is a terminal.

    \b
    Example:
      archiver demo      # no keys needed: a generated history, synced twice
      archiver sync      # with PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY exported
    """


def group_db(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """`archiver --db x report` as `archiver report --db x`: the group's --db wins over the
    environment and the default, the command's own --db over both."""
    given = ctx.meta.get("archiver.db")
    if (
        given is not None
        and ctx.get_parameter_source(param.name or "") is not click.core.ParameterSource.COMMANDLINE
    ):
        return str(given)
    return value


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "database",
        default="archive.db",
        envvar="ARCHIVER_DATABASE_URL",
        show_envvar=True,
        show_default=True,
        callback=group_db,
        help="SQLAlchemy URL (sqlite:///..., postgresql://...) or a SQLite file path.",
    )(f)


def format_option(*extra: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice([*FORMATS, *extra]),
        default="table",
        show_default=True,
        help="table for people; csv, json or markdown for machines"
        + (", html for a web page." if extra else "."),
    )


def open_archive(database: str) -> "Archive":
    """The archive named by --db; a password in its URL joins the log redaction."""
    from archiver.archive import Archive

    # What is loaded by now (SQLAlchemy, httpx, archiver) lives as long as the process. Frozen, it is
    # skipped by the collector's full passes, during the run and at exit: ~50 ms of a no-op sync.
    gc.freeze()
    archive = Archive(database)
    if archive.url.password:
        log.redact.secrets.add(str(archive.url.password))
    return archive
