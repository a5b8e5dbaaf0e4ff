"""`archiver demo`: the whole flow without keys, against a generated history served in-process."""

import os
import random
import shutil
import sys
import time
from pathlib import Path

import click

from archiver.cli.main import cli, note, output_options
from archiver.cli.read import terminal_width
from archiver.cli.sync import summary
from archiver.errors import ConfigError

NEXT_STEPS = """
Next, try:
  {prog} report --db {db}                          # the reports and what each answers
  {prog} report monthly_activity --db {db}
  {prog} runs --db {db}                            # the two syncs you just ran
  {prog} dashboard --db {db} -o demo.html          # charts in one HTML file (the dashboard extra)
  {prog} datasette-metadata --db {db} > metadata.json && datasette {db} -m metadata.json
For your own jobs: put your keys in portkey.env (see the README), then `{prog} sync`."""


def program() -> str:
    """How to run archiver again, as this shell would: by name if it is on PATH."""
    if shutil.which("archiver"):
        return "archiver"
    return sys.argv[0] if os.path.basename(sys.argv[0]) == "archiver" else f"{sys.executable} -m archiver"


@cli.command("demo", short_help="Try archiver without keys, on a generated history.")
@output_options
@click.option("--db", "database", default="demo.db", show_default=True, help="A new SQLite file to create.")
@click.option(
    "--jobs", default=3000, show_default=True, type=click.IntRange(1, 1_000_000), help="History size."
)
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the generated history.")
def demo_command(database: str, jobs: int, seed: int) -> None:
    """Serve a generated history of fine-tuning jobs on 127.0.0.1, sync it, let it move on, sync
    again (incrementally), and show a report: no keys, no network.

    \b
    Example:
      archiver demo && archiver report failure_reasons --db demo.db
    """
    from archiver import reports
    from archiver.archive import Archive
    from archiver.fake import API_KEY, VIRTUAL_KEY, FakeApi, serve
    from archiver.generate import IN_FLIGHT, add_new_jobs, finish_job, make_jobs
    from archiver.portkey import Portkey

    if Path(database).exists():
        raise ConfigError(f"{database} exists: remove it, or give --db a new file")
    rng = random.Random(seed)
    now = int(time.time()) - 6 * 3600  # the 25 jobs that arrive later still lie in the past
    fake = FakeApi(make_jobs(jobs, seed=seed, now=now, plain=True, spacing=4 * 3600))
    fake.provider = "openai"
    with serve(fake) as base_url, Archive(database) as archive:
        route = Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url)
        note(summary(archive.sync(route), database))
        add_new_jobs(fake.jobs, 25, rng, plain=True)  # a day later: new jobs, and in-flight ones end
        for job in [j for j in fake.jobs[25:] if j["status"] in IN_FLIGHT]:
            finish_job(job, rng.choice(["succeeded", "succeeded", "failed"]))
        note(summary(archive.sync(route), database))
        columns, rows = archive.report_table("status_overview")
    click.echo(reports.render(columns, rows, "table", terminal_width()))
    note(NEXT_STEPS.format(db=database, prog=program()))
