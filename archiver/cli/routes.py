"""`archiver routes`, and the routes `archiver sync` runs: from archiver.toml, or `default` from PORTKEY_*."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from archiver import log
from archiver.cli.main import cli, db_option, exit_code, note, open_archive
from archiver.errors import ArchiverError, ConfigError

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.routes import Route
    from archiver.runs import RoutesResult


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        envvar="ARCHIVER_CONFIG",
        show_envvar=True,
        help="The routes' config file; default: archiver.toml in the working directory, if there is one.",
    )(f)


def chosen(
    ctx: click.Context, config: str | None, names: tuple[str, ...], base_url: str, ca_bundle: str | None
) -> tuple[list[Route], bool]:
    """The routes to sync, and whether a config file named them (else: `default`, from PORTKEY_*)."""
    from archiver.routes import config_path, load_routes

    path = config_path(config, Path.cwd())
    if path is not None:
        for flag in ("base_url", "ca_bundle"):
            if ctx.get_parameter_source(flag) is click.core.ParameterSource.COMMANDLINE:
                option = "--" + flag.replace("_", "-")
                raise ConfigError(f"{option} is for the route from the environment: set {flag} in {path}")
    return load_routes(path, os.environ, list(names), base_url=base_url, ca_bundle=ca_bundle), bool(path)


def run_routes(archive: Archive, routes: list[Route], report: dict[str, Any], **options: Any) -> RoutesResult:
    """Every route in turn, each summed up on stderr as it ends; `report` gains what --json says."""
    from archiver import interrupts
    from archiver.cli.sync import migrated, recorded_run, summary

    interrupts.install()
    report["routes"] = {}
    done = archive.sync(routes=routes, on_migrate=migrated, **options)
    for name, result in done.results.items():
        note(f"route {name}: " + summary(result, report["database"]).lstrip("\n"))
    for name in done.errors:
        report["routes"][name] = recorded_run(archive, name)
    return done  # type: ignore[no-any-return]  # Archive.sync(routes=) returns a RoutesResult


def routes_outcome(done: RoutesResult, report: dict[str, Any], as_json: bool) -> None:
    """The run over several routes: --json (each route, and the sums), then the worst route's
    error (its exit code), if any route failed or could not do everything."""
    from archiver.cli.sync import fields, troubles
    from archiver.runs import worst

    troubled: dict[str, ArchiverError] = {}
    for name, result in done.results.items():
        trouble = troubles(result)
        if trouble:
            troubled[name] = trouble
        report["routes"][name] = route_json(fields(result) | {"partial": result.partial}, trouble, False)
    for name, failure in done.errors.items():
        troubled[name] = failure
        report["routes"][name] = route_json(report["routes"][name], failure, True)
    bad = worst(list(troubled.values()))
    named = next((n for n, e in troubled.items() if e is bad), None)
    error: ArchiverError | None = None
    if bad:
        error = RouteFailed(f"route {named}: {log.redact(str(bad))}", bad.exit_code)
    if as_json:
        sums = {k: sum(r.get(k) or 0 for r in report["routes"].values()) for k in COUNTERS}
        partial = {n: r["partial"] for n, r in report["routes"].items() if r.get("partial")}
        status = "failed" if done.errors else "succeeded"
        out = {
            "status": status,
            "error": str(error) if error else None,
            "exit_code": exit_code(error) if error else 0,
        }
        click.echo(json.dumps(out | sums | {"partial": partial or None} | report))
    if error:
        raise error


COUNTERS = (
    *("pages", "requests", "jobs_seen", "jobs_inserted", "jobs_updated", "jobs_unchanged"),
    *("jobs_rejected", "jobs_vanished"),
)


def route_json(fields: dict[str, Any], error: ArchiverError | None, failed: bool) -> dict[str, Any]:
    status = "failed" if failed else "succeeded"
    said = log.redact(str(error)) if error else None
    return {"status": status, "error": said, "exit_code": exit_code(error) if error else 0, **fields}


class RouteFailed(ArchiverError):
    """The worst of a run over several routes: its line, named by route, and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


@cli.command("routes", short_help="List the routes: provider, jobs, last run, coverage.")
@db_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the routes as a JSON list on stdout.")
def routes_command(database: str, config: str | None, as_json: bool) -> None:
    """List each route of archiver.toml (or `default`, without one), and every route the archive
    holds runs of: its provider, how many jobs it lists, its last run and its coverage.

    \b
    Example:
      archiver routes --db archive.db
    """
    from archiver.routes import config_path, configured_providers

    providers = configured_providers(config_path(config, Path.cwd()))
    with open_archive(database) as archive:
        rows = archive.routes(providers)
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        last = f"{r['last_run_status']} at {r['last_run_utc']}" if r["last_run_id"] else "never synced"
        click.echo(
            f"{r['route']}  {r['provider']}  {r['jobs']:,} jobs  last run: {last}  coverage: {r['coverage']}"
        )
