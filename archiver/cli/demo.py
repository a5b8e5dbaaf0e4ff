"""`archiver demo`: the whole flow without keys, against a generated history served in-process."""

import random
import time
from pathlib import Path

import click

from archiver.cli.main import cli, output_options, say
from archiver.cli.sync import summary
from archiver.errors import ConfigError

NEXT_STEPS = """
Next, try:
  archiver report --db {db}                          # the reports and what each answers
  archiver report monthly_activity --db {db}
  archiver runs --db {db}                            # the two syncs you just ran
  archiver dashboard --db {db} -o demo.html          # charts in one HTML file (pip install '.[dashboard]')
  archiver datasette-metadata --db {db} > metadata.json && datasette {db} -m metadata.json
For your own jobs: export PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY, then `archiver sync`."""


@cli.command("demo")
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
    from archiver.fake import (
        API_KEY,
        IN_FLIGHT,
        VIRTUAL_KEY,
        FakeApi,
        add_new_jobs,
        finish_job,
        make_jobs,
        serve,
    )
    from archiver.portkey import Portkey

    if Path(database).exists():
        raise ConfigError(f"{database} exists: remove it, or give --db a new file")
    rng = random.Random(seed)
    now = int(time.time()) - 6 * 3600  # the 25 jobs that arrive later still lie in the past
    fake = FakeApi(make_jobs(jobs, seed=seed, now=now, plain=True, spacing=4 * 3600))
    with serve(fake) as base_url, Archive(database) as archive:
        route = Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url)
        say(summary(archive.sync(route), database))
        add_new_jobs(fake.jobs, 25, rng, plain=True)  # a day later: new jobs, and in-flight ones end
        for job in [j for j in fake.jobs[25:] if j["status"] in IN_FLIGHT]:
            finish_job(job, rng.choice(["succeeded", "succeeded", "failed"]))
        say(summary(archive.sync(route), database))
        columns, rows = archive.report_table("status_overview")
    click.echo(reports.render(columns, rows, "table"))
    say(NEXT_STEPS.format(db=database))
