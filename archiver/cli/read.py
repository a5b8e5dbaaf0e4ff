"""Commands that read the archive (runs, status, report, query, tables) and manage its schema (db)."""

import os
import shutil
import sys
from typing import Any

import click

from archiver.cli.main import MAX_INT, cli, db_option, format_option, note, open_archive, output_options
from archiver.errors import ConfigError


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, title: str = "archiver") -> str:
    if fmt == "html":
        from archiver.dashboard import render_table

        return render_table(title, columns, rows)
    from archiver import render

    return render.render(columns, rows, fmt, terminal_width() if fmt == "table" else None)


def terminal_width() -> int | None:
    """The terminal's width when stdout is one (a table is cut to fit it); None for a pipe or a file,
    which get every value whole."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


@cli.group("db", short_help="Upgrade the archive's schema, or print its revision.")
@output_options
def db_group() -> None:
    """Manage the archive's schema.

    \b
    Example:
      archiver db current && archiver db upgrade
    """


@db_group.command("upgrade", short_help="Apply pending schema migrations.")
@output_options
@db_option
def db_upgrade(database: str) -> None:
    """Apply pending schema migrations (under the run lock: never beside a sync).

    \b
    Example:
      archiver db upgrade --db postgresql://archiver@db.internal/archive
    """
    from archiver.db import show_url

    with open_archive(database) as archive:
        old = archive.upgrade()
        moved = f"Migrated the archive's schema from {old} to" if old else "Schema at"
        note(f"{moved} {archive.revision()} (head) in {show_url(archive.url)}")


@db_group.command("current", short_help="Print the schema revision.")
@output_options
@db_option
def db_current(database: str) -> None:
    """Print the schema revision of the archive.

    \b
    Example:
      archiver db current --db archive.db
    """
    from archiver.db import head

    with open_archive(database) as archive:
        now = archive.revision()
    click.echo(f"{now or 'empty'}{' (head)' if now == head() else f' (head is {head()})'}")


@cli.command("runs", short_help="List recent sync runs, newest first.")
@output_options
@db_option
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, MAX_INT),
    help="How many runs to show.",
)
@format_option("html")
def runs_command(database: str, limit: int, fmt: str) -> None:
    """List recent sync runs, newest first.

    \b
    Example:
      archiver runs --limit 5
    """
    with open_archive(database) as archive:
        columns, rows = archive.report_table("sync_health", limit=limit)
    click.echo(render(columns, rows, fmt, "sync runs"))


class Age(click.ParamType):  # type: ignore[type-arg]  # generic only in click's newest stubs
    """A duration like 90m, 2h or 1d (plain numbers are seconds), in seconds."""

    name = "age"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        from archiver.health import parse_age

        try:
            return parse_age(value)
        except ConfigError:
            self.fail(f"{value!r} is not an age: use a number with s, m, h or d, e.g. 90m or 2h", param, ctx)


@cli.command("status", short_help="Say OK, STALE or FAILED, and why (exit 1 unless OK).")
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
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and why as one JSON object.")
def status_command(database: str, max_age: float | None, as_json: bool) -> None:
    """Say OK, STALE or FAILED, and why: the archive's last successful sync and last run.

    Exit 0 when OK; 1 when STALE (never synced, or older than --max-age) or FAILED
    (the last run failed, was interrupted or abandoned, or was killed while running).
    Parts of the history the route cannot reach are listed, and are no failure.

    A sync running now is named with its pid, start and jobs so far. On a terminal the verdict is
    coloured (unless NO_COLOR is set).

    \b
    Example (for monitoring):
      archiver status --max-age 2h || echo "archive is stale"
    """
    with open_archive(database) as archive:
        health = archive.status(max_age)
    if as_json:
        import json

        fields = ("verdict", "ok", "lines", "coverage", "audit", "last_success", "running")
        click.echo(json.dumps({f: getattr(health, f) for f in fields}))
    else:
        first, *rest = [*health.lines, *health.coverage, *(health.audit or [])]
        verdict, sep, why = first.partition(":")
        click.echo("\n".join([colour(verdict, VERDICT_COLOURS.get(verdict)) + sep + why, *rest]))
    if not health.ok:
        raise click.exceptions.Exit(1)


VERDICT_COLOURS = {"OK": "green", "STALE": "yellow", "FAILED": "red"}


def colour(text: str, fg: str | None) -> str:
    """`text` coloured when stdout is a terminal and NO_COLOR is not set (no-color.org)."""
    if fg is None or os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return click.style(text, fg=fg, bold=True)


@cli.command("report", short_help="Run a canned report, or list them.")
@output_options
@click.argument("name", required=False)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A report parameter; repeatable.")
@click.option("--since", help="Same as --param since=...: from this date (UTC), e.g. 2026-01-01.")
@click.option("--until", help="Same as --param until=...: before this date (UTC).")
@format_option("html")
@db_option
def report_command(
    name: str | None, params: tuple[str, ...], since: str | None, until: str | None, fmt: str, database: str
) -> None:
    """Run a named report, or list them all, with their parameters, when no name is given.

    Parameters that are not required have defaults: since and until span all time,
    now is the current time; a value of the wrong type exits 2 naming the parameter.
    --format html writes one standalone HTML page.

    \b
    Examples:
      archiver report
      archiver report monthly_activity --since 2026-01-01 --format csv
      archiver report job_timeline --param job_id=ftjob-abc123
    """
    from archiver import reports

    if name is None:
        listing = [
            (n, " ".join(p.usage() for p in reports.parameters(n)), reports.describe(n))
            for n in reports.names()
        ]
        click.echo(render(["report", "parameters", "answers"], listing, fmt, "reports"))
        return
    given = dict(key_value(p) for p in params)
    given.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
    reports.resolve(name, given)  # a bad name or value fails before the database is opened
    with open_archive(database) as archive, archive.report_rows(name, **given) as (columns, rows):
        if fmt in STREAMED:  # a report of any length, in constant memory
            write_stream(columns, rows, fmt)
            return
        click.echo(render(columns, list(rows), fmt, name))


def key_value(param: str) -> tuple[str, str]:
    key, sep, value = param.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{param!r} is not KEY=VALUE", param_hint="--param")
    return key, value


@cli.command("tables", short_help="List the tables and views, with their columns.")
@output_options
@format_option("html")
@db_option
def tables_command(fmt: str, database: str) -> None:
    """List the archive's tables and views with their columns: what `archiver query` can read.

    \b
    Example:
      archiver tables && archiver query "SELECT status, count(*) FROM jobs GROUP BY status"
    """
    with open_archive(database) as archive:
        columns, rows = archive.tables_table()
    click.echo(render(columns, rows, fmt, "tables"))


@cli.command("query", short_help="Run one read-only SQL statement.")
@output_options
@click.argument("sql")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="A value for :KEY in the SQL; repeatable."
)
@format_option("html")
@db_option
def query_command(sql: str, params: tuple[str, ...], fmt: str, database: str) -> None:
    """Run one read-only SQL statement against the archive; :name marks a bound --param value.

    \b
    Examples:
      archiver query "SELECT status, count(*) FROM jobs GROUP BY status" --format csv
      archiver query "SELECT * FROM job_summary WHERE model = :model" --param model=gpt-4o-mini
    """
    if not sql.strip():
        raise click.BadParameter("give one SQL statement", param_hint="SQL")
    values = dict(key_value(p) for p in params)
    with open_archive(database) as archive, archive.query_rows(sql, values or None) as (columns, rows):
        if fmt in STREAMED:  # an export of any size, in constant memory
            write_stream(columns, rows, fmt)
            return
        click.echo(render(columns, list(rows), fmt, "query"))


STREAMED = ("csv", "json", "markdown")  # render.STREAMED, repeated: --help does not load the reports


def write_stream(columns: list[str], rows: Any, fmt: str) -> None:
    """Write rows to stdout as they come from the database, a few thousand lines per write."""
    from archiver.render import render_stream

    out = sys.stdout
    batch: list[str] = []
    for piece in render_stream(columns, rows, fmt):
        batch.append(piece)
        if len(batch) >= 2000:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
    out.flush()
