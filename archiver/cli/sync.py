"""`archiver sync`: options and environment in, Archive.sync, a summary line (or JSON) out."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from archiver import interrupts, log
from archiver.cli.main import (
    ENV_HELP,
    cli,
    db_option,
    exit_code,
    meta,
    note,
    open_archive,
    output_options,
)
from archiver.cli.routes import chosen, config_option, routes_outcome, run_routes
from archiver.errors import ArchiverError, Interrupted, RejectedItems, Unrefreshed
from archiver.portkey import HOSTED, Portkey

if TYPE_CHECKING:  # the run itself imports them: --help needs neither SQLAlchemy nor httpx
    from archiver.archive import Archive
    from archiver.sync import SyncResult


def setting(
    flag: str, default: Any, kind: Any, help: str, envvar: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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


@cli.command("sync", epilog=ENV_HELP, short_help="Copy new and changed jobs from Portkey into the archive.")
@db_option
@setting(
    "--base-url",
    HOSTED,
    str,
    "The gateway's base URL; self-hosted: http://localhost:8787/v1.",
    "PORTKEY_BASE_URL",
)
@setting(
    "--page-size",
    100,
    click.IntRange(1, 10_000),
    "Jobs per request to ask for (raise it if a provider pages badly); every job is synced whatever it is.",
)
@click.option("--limit", "old_limit", type=click.IntRange(1, 10_000), envvar="ARCHIVER_LIMIT", hidden=True)
@setting("--timeout", 30.0, click.FloatRange(0.1), "Seconds to wait for a response (connect: at most 5).")
@setting("--max-retries", 5, click.IntRange(0, 20), "Retries per request: 408/409/429/5xx, network errors.")
@setting(
    "--retry-after-cap",
    60.0,
    click.FloatRange(0),
    "Longest Retry-After to honour; a longer one ends the run with exit 75.",
)
@setting("--retry-backoff", 0.5, click.FloatRange(0), "First retry waits up to this long; doubles each time.")
@setting(
    "--max-time",
    None,
    click.FloatRange(1),
    "Deadline for the whole run, in seconds (checked before each request).",
)
@setting("--ca-bundle", None, click.Path(exists=True, dir_okay=False), "PEM file of a private CA to trust.")
@click.option("--full", is_flag=True, help="Walk the whole history instead of stopping at known jobs.")
@setting(
    "--parallel",
    4,
    click.IntRange(1, 32),
    "With --full, walk this many parts of the archived history at once (1: one walk).",
)
@click.option(
    "--details/--no-details",
    default=True,
    envvar="ARCHIVER_DETAILS",
    show_envvar=True,
    help="Then archive the events, checkpoints, files and metrics of jobs that became final.",
)
@setting("--details-concurrency", 4, click.IntRange(1, 32), "Jobs whose details are fetched at once.")
@setting(
    "--details-max-jobs", None, click.IntRange(1), "Fetch the details of at most this many jobs this run."
)
@setting(
    "--details-max-bytes",
    50_000_000,
    click.IntRange(1),
    "Largest result file kept; a larger one is recorded with its size, not kept.",
)
@setting(
    "--checkpoint-log",
    None,
    click.Path(dir_okay=False),
    "Append the run's checkpoint (the audit chain's head) to this file; keep it on another host.",
)
@setting(
    "--signing-key", None, click.Path(dir_okay=False), "Ed25519 private key (PEM) to sign checkpoints with."
)
@config_option
@click.option(
    "--route",
    "route_names",
    multiple=True,
    help="Sync only this route of the config file (repeatable); default: every route.",
)
@click.option("--no-migrate", is_flag=True, help="Refuse an outdated schema instead of migrating it.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout, on failure too."
)
@output_options
def sync_command(
    database: str,
    base_url: str,
    ca_bundle: str | None,
    as_json: bool,
    no_migrate: bool,
    config: str | None,
    route_names: tuple[str, ...],
    **options: Any,
) -> None:
    """Copy new and changed fine-tuning jobs into the archive (all of them with --full).

    Incremental by default: it stops once it reaches jobs already archived in a final state,
    after seeing again every job the archive holds in flight. Only one sync runs at a time.
    With a config file (archiver.toml), every route it names, one after another; one route
    failing does not stop the others, and the exit code is the worst route's.

    \b
    Example:
      archiver sync --db archive.db      # PORTKEY_* exported beforehand
      archiver sync --route openai       # one route of archiver.toml
    """
    report: dict[str, Any] = {}  # what --json prints, whatever happens
    ctx = click.get_current_context()
    page_size_from(ctx, options)
    if not options["full"] and ctx.get_parameter_source("parallel") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--parallel applies only with --full", ctx)
    try:
        routes, configured = chosen(ctx, config, route_names, base_url, ca_bundle)  # before any file
        archive = open_archive(database)
        from archiver.db import show_url

        report["database"] = show_url(archive.url)
        with archive:
            if configured:
                several = run_routes(archive, routes, report, migrate=not no_migrate, **options)
            else:
                result = run(archive, routes[0].portkey, report, migrate=not no_migrate, **options)
    except (ArchiverError, Interrupted, KeyboardInterrupt) as e:
        if as_json:
            failed = "interrupted" if isinstance(e, Interrupted | KeyboardInterrupt) else "failed"
            error = log.redact(str(e)) if isinstance(e, ArchiverError) else "interrupted by a signal"
            click.echo(json.dumps({"status": failed, "error": error, "exit_code": exit_code(e), **report}))
        raise
    if configured:
        return routes_outcome(several, report, as_json)
    rejected = troubles(result)
    if as_json:
        done: dict[str, Any] = {"status": "succeeded", "error": str(rejected) if rejected else None}
        done |= {"exit_code": exit_code(rejected) if rejected else 0, **report}
        click.echo(json.dumps(done | {"seconds": round(result.elapsed, 3), "partial": result.partial}))
    if rejected:
        raise rejected


def troubles(result: SyncResult) -> ArchiverError | None:
    """What a completed run could not do, as the error its exit code says (None: nothing)."""
    rejected: ArchiverError | None = None
    if result.unrefreshed:
        job_id, why = next(iter(result.unrefreshed.items()))
        rejected = Unrefreshed(
            f"{plural(len(result.unrefreshed), 'in-flight job')} could not be refreshed (kept as last "
            f"seen, asked again later; `archiver status` lists them): job {job_id}: {log.redact(why)}"
        )
    if result.rejected:
        one = result.rejected == 1
        rejected = RejectedItems(
            f"{plural(result.rejected, 'list item')} {'was not a job' if one else 'were not jobs'}; "
            f"{'it is' if one else 'they are'} kept in rejected_items"
        )
    return rejected


def page_size_from(ctx: click.Context, options: dict[str, Any]) -> None:
    """--limit was the page size, which nowhere else means: it still works, with a note."""
    old = options.pop("old_limit")
    if old is None:
        return
    given = ctx.get_parameter_source("old_limit") is click.core.ParameterSource.COMMANDLINE
    name, new = ("--limit", "--page-size") if given else ("ARCHIVER_LIMIT", "ARCHIVER_PAGE_SIZE")
    logging.getLogger("archiver").warning(
        "sync %s is deprecated: it sets the jobs per request, not how many are synced; use %s", name, new
    )
    if ctx.get_parameter_source("page_size") is click.core.ParameterSource.DEFAULT:
        options["page_size"] = old


def run(archive: Archive, route: Portkey, report: dict[str, Any], **options: Any) -> SyncResult:
    """The run itself; `report` gains the run's id, mode and counters once the run has started."""
    interrupts.install()
    shown = sys.stderr.isatty() and not meta("quiet")
    on_page, on_details = (progress(), details_progress()) if shown else (None, None)
    try:
        result = archive.sync(route, on_page=on_page, on_migrate=migrated, on_details=on_details, **options)
    except (ArchiverError, Interrupted, KeyboardInterrupt):
        report.update(recorded_run(archive))
        raise
    note(summary(result, report["database"]))
    report.update(fields(result))
    return result


def fields(result: SyncResult) -> dict[str, Any]:
    """A completed run as --json says it."""
    out = {
        "run_id": result.run_id,
        "mode": result.mode,
        **result.counters(),
        "jobs_vanished": result.vanished,
    }
    out["checkpoint"] = result.checkpoint.as_dict() if result.checkpoint else None
    out["unrefreshed"] = [{"job_id": i, "error": log.redact(e)} for i, e in result.unrefreshed.items()]
    if result.details is not None and result.details.total:  # the run had details to fetch
        d = result.details
        out["details"] = {"jobs": d.done, "retry": d.retry, "unsupported": d.unsupported, "left": d.left}
    return out


def migrated(old: str) -> None:
    from archiver.db import head

    note(f"Migrated the archive's schema from {old} to {head()}")


def recorded_run(archive: Archive, route: str | None = None) -> dict[str, Any]:
    """The id, mode and counters a failed run (of `route`) recorded, if it got as far as starting."""
    try:
        row = archive.last_run(route)
    except ArchiverError:  # the archive itself may be what failed
        return {}
    if row is None or row["status"] == "succeeded":
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
    checkpoint = {"seq": row["seq"], "hash": row["hash"]} if row.get("seq") else None
    return {"run_id": row["id"], "mode": row["mode"], **{k: row[k] for k in keys}, "checkpoint": checkpoint}


def progress() -> Any:
    """A line updated in place on a terminal: pages, jobs, new and changed, rate and elapsed time."""
    from archiver.health import human

    started = time.monotonic()

    def show(r: SyncResult) -> None:
        elapsed = time.monotonic() - started
        rate = r.seen / elapsed if elapsed > 0 else 0.0
        click.echo(
            f"\r\x1b[K{plural(r.pages, 'page')}, {plural(r.seen, 'job')} ({r.inserted:,} new, "
            f"{r.updated:,} changed), {rate:,.0f} jobs/s, {human(elapsed)}",
            err=True,
            nl=False,
        )

    return show


def details_progress() -> Any:
    """The details' line on a terminal: jobs done of those due, and the rate."""
    started = time.monotonic()

    def show(d: Any) -> None:
        done = d.done + d.retry + d.unsupported
        rate = done / max(time.monotonic() - started, 1e-9)
        click.echo(f"\r\x1b[Kdetails: {done:,} of {d.total:,} jobs, {rate:,.1f} jobs/s", err=True, nl=False)

    return show


def summary(r: SyncResult, where: str) -> str:
    from archiver.health import human

    end = "\n" if sys.stderr.isatty() and not meta("quiet") else ""
    listing = r.requests - (r.details.requests if r.details else 0)
    rejected = f", {r.rejected:,} rejected" if r.rejected else ""
    vanished = f", {r.vanished:,} vanished" if r.vanished else ""
    return (
        f"{end}Synced {plural(r.seen, 'job')} ({r.inserted:,} new, {r.updated:,} changed, "
        f"{r.unchanged:,} unchanged{rejected}{vanished}) in {plural(r.pages, 'page')}, "
        f"{plural(listing, 'request')}, into {where} in {human(r.elapsed)}{details(r)}"
    )


def details(r: SyncResult) -> str:
    """What the run did for details, when it fetched any: the summary line's end."""
    d = r.details
    if d is None or not (d.done or d.retry or d.left):
        return ""
    parts = [f"{d.retry:,} to retry" if d.retry else "", f"{d.left:,} left for later" if d.left else ""]
    more = ", ".join(p for p in parts if p)
    return f"; the details of {plural(d.done, 'job')}{f' ({more})' if more else ''} in " + plural(
        d.requests, "request"
    )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
