"""`archiver demo`: the whole flow without keys, against a generated history served on 127.0.0.1."""

import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from archiver.cli.main import cli, note, output_options, say
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
  {prog} demo --serve                              # the fake API for `{prog} sync` itself
For your own jobs: put your keys in portkey.env (see the README), then `{prog} sync`."""

SERVING = """Serving a generated history of {jobs:,} fine-tuning jobs on {url} (no keys, no network).
In another shell, run the three export lines above, then `{prog} sync` (and `status`, `sync --full`,
a cron line, ...) as with Portkey. Every {tick:g} s new jobs arrive and jobs in flight finish, so
each sync finds something new. Ctrl-C stops it."""

SPAN = 2 * 365 * 86400  # the generated history reaches back at most two years, whatever its size
DAY_OF_JOBS = 25  # what `demo` adds between its two syncs, and `demo --serve` every tick


def program() -> str:
    """How to run archiver again, as this shell would: by name if it is on PATH."""
    if shutil.which("archiver"):
        return "archiver"
    return sys.argv[0] if os.path.basename(sys.argv[0]) == "archiver" else f"{sys.executable} -m archiver"


@cli.command("demo", short_help="Try archiver without keys, on a generated history.")
@output_options
@click.option(
    "--db",
    "database",
    default="demo.db",
    show_default=True,
    help="The SQLite file to create; an earlier demo's is replaced, any other file is refused.",
)
@click.option(
    "--jobs", default=3000, show_default=True, type=click.IntRange(1, 1_000_000), help="History size."
)
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the generated history.")
@click.option("--serve", is_flag=True, help="Only serve the fake API, for `archiver sync` in another shell.")
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="With --serve (0: any free)."
)
@click.option(
    "--tick",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="With --serve: seconds between changes.",
)
def demo_command(database: str, jobs: int, seed: int, serve: bool, port: int, tick: float) -> None:
    """Serve a generated history of fine-tuning jobs on 127.0.0.1, sync it, let it move on, sync
    again (incrementally), and show a report: no keys, no network. With --serve, only serve it and
    print the variables that point `archiver sync` at it.

    \b
    Examples:
      archiver demo && archiver report failure_reasons --db demo.db
      archiver demo --serve      # then, in another shell: export the lines it prints; archiver sync
    """
    from archiver import render
    from archiver.archive import Archive
    from archiver.fake import API_KEY, VIRTUAL_KEY
    from archiver.fake import serve as serving
    from archiver.portkey import Portkey

    rng = random.Random(seed)
    fake = demo_api(jobs, seed)
    if serve:
        serve_until_stopped(fake, rng, port, tick)
        return
    replace_earlier_demo(Path(database))
    with serving(fake) as base_url, Archive(database) as archive:
        route = Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url)
        note(summary(archive.sync(route), database))
        move_on(fake, rng)  # a day later: new jobs, and in-flight ones end
        note(summary(archive.sync(route), database))
        columns, rows = archive.report_table("status_overview")
    click.echo(render.render(columns, rows, "table", terminal_width()))
    note(NEXT_STEPS.format(db=database, prog=program()))


def demo_api(jobs: int, seed: int) -> Any:
    """The fake API holding a team's history: `jobs` jobs up to six hours ago, two years at most."""
    from archiver.fake import FakeApi
    from archiver.generate import make_jobs

    now = int(time.time()) - 6 * 3600  # the jobs that arrive later still lie in the past
    fake = FakeApi(make_jobs(jobs, seed=seed, now=now, plain=True, spacing=min(4 * 3600, SPAN // jobs)))
    fake.provider = "openai"
    return fake


def move_on(fake: Any, rng: random.Random) -> None:
    """New jobs arrive and the ones in flight end, as in a day of the team's work. The served list
    is replaced whole, so that a request being answered meanwhile sees one state or the other."""
    from archiver.generate import FAILURES, IN_FLIGHT, add_new_jobs, demo_duration, finish_job

    jobs = [dict(job) for job in fake.jobs]
    add_new_jobs(jobs, DAY_OF_JOBS, rng, plain=True)
    for job in [j for j in jobs[DAY_OF_JOBS:] if j["status"] in IN_FLIGHT]:
        status = rng.choice(["succeeded", "succeeded", "failed"])
        seconds = demo_duration(job["model"], status, rng.randrange(2700, 11700))
        finish_job(job, status, seconds, FAILURES["server_error"][rng.randrange(3)])
    fake.jobs = jobs


def replace_earlier_demo(path: Path) -> None:
    """Running the demo again starts it over; a file that is not an earlier demo's is kept."""
    if not path.exists():
        return
    if not is_demo_archive(path):
        raise ConfigError(
            f"{path} exists and is not an earlier demo's archive: remove it, or give --db a new file"
        )
    for stale in (path, *(Path(f"{path}{end}") for end in ("-wal", "-shm", ".lock"))):
        stale.unlink(missing_ok=True)
    note(f"Replaced the earlier demo archive {path}")


def is_demo_archive(path: Path) -> bool:
    """An archive whose every sync read the demo's fake API on 127.0.0.1."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            runs, elsewhere = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE base_url NOT LIKE 'http://127.0.0.1:%') "
                "FROM sync_runs"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(runs) and not elsewhere


def serve_until_stopped(fake: Any, rng: random.Random, port: int, tick: float) -> None:
    """Serve the fake API until Ctrl-C, moving the history on every `tick` seconds."""
    from archiver.fake import API_KEY, VIRTUAL_KEY, serve

    stop = threading.Event()
    try:
        with serve(fake, port=port) as base_url:
            click.echo(
                f"export PORTKEY_BASE_URL={base_url}\nexport PORTKEY_API_KEY={API_KEY}\n"
                f"export PORTKEY_VIRTUAL_KEY={VIRTUAL_KEY}"
            )
            sys.stdout.flush()
            say(SERVING.format(jobs=len(fake.jobs), url=base_url, prog=program(), tick=tick))
            while not stop.wait(tick):
                move_on(fake, rng)
                fake.requests.clear()  # the fake's request log is for tests: keep it from growing
    except KeyboardInterrupt:
        say("Stopped serving the demo API")
    except OSError as e:
        raise ConfigError(f"cannot serve on 127.0.0.1:{port}: {e.strerror}") from None
