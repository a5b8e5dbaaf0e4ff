"""Commands that show the archive: a self-contained HTML dashboard, Datasette metadata."""

import json
import os
import time
from pathlib import Path

import click

from archiver.cli.main import cli, db_option, note, open_archive, output_options
from archiver.errors import ConfigError


@cli.command("dashboard", short_help="Write one HTML page of charts.")
@output_options
@db_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="archive.html",
    show_default=True,
    help="Where to write the page ('-' for stdout).",
)
def dashboard_command(database: str, output: str) -> None:
    """Write one self-contained HTML page of charts (no network, no server): jobs per month,
    durations, failures, tokens, what is in flight, sync health and coverage.

    Needs the dashboard extra: pip install '.[dashboard]' in archiver's source tree.

    \b
    Example:
      archiver dashboard -o archive.html && xdg-open archive.html
    """
    from archiver.dashboard import render

    with open_archive(database) as archive:
        page = archive.read(render)
    if output == "-":
        click.echo(page)
        return
    try:  # private like the archive it summarises
        with os.fdopen(
            os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8"
        ) as f:
            f.write(page)
    except OSError as e:
        raise ConfigError(f"cannot write {output}: {e.strerror}") from None
    note(f"Wrote {output} ({len(page) / 1e6:.1f} MB) at {time.strftime('%H:%M:%S')}")


@cli.command("datasette-metadata", short_help="Print Datasette metadata for the archive.")
@output_options
@db_option
def datasette_metadata_command(database: str) -> None:
    """Print Datasette metadata (JSON) for the archive: every report as a canned query,
    table and column descriptions, facets. Datasette serves SQLite files only.

    \b
    Example:
      archiver datasette-metadata > metadata.json && datasette archive.db -m metadata.json
    """
    from archiver.datasette import metadata

    with open_archive(database) as archive:
        if archive.url.get_backend_name() != "sqlite" or not archive.url.database:
            raise ConfigError("Datasette serves SQLite files only: give --db a SQLite archive")
        archive.revision()  # there must be an archive (exit 2 otherwise)
        name = Path(archive.url.database).stem
    click.echo(json.dumps(metadata(name), indent=2))
