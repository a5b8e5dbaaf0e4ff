"""The commands a newcomer reaches for: `tables`, `query` with parameters, `status --json`, reports that
say why they are empty, and help that lists the commands in the order they are used."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from archiver import Archive, render
from archiver.cli import cli
from archiver.sync import sync
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for


def test_tables_lists_every_table_and_view_with_its_columns(engine: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    result = run_cli("tables", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {(t["name"], t["kind"]): t["columns"].split(", ") for t in json.loads(result.stdout)}
    inspector = sa.inspect(engine)
    expected = {
        (name, kind): [c["name"] for c in inspector.get_columns(name)]
        for kind, names in (("table", inspector.get_table_names()), ("view", inspector.get_view_names()))
        for name in names
        if name != "alembic_version"
    }
    assert listed == expected
    assert {"jobs", "job_summary", "sync_runs", "sync_run_summary"} <= {name for name, _ in listed}


def test_help_lists_the_commands_in_the_order_they_are_used_with_whole_summaries() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    listing = result.output.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listing] == [
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
    ]
    assert all(line.rstrip().endswith(".") and "..." not in line for line in listing), listing


def test_a_usage_error_before_the_command_is_one_line_exit_2() -> None:
    result = run_cli("--frobnicate", "report", env=cli_env("http://127.0.0.1:9/v1"))
    assert (result.returncode, result.stdout) == (2, "")
    assert re.fullmatch(
        r"archiver: error: No such option '--frobnicate'\. \(see .*archiver --help\)\n", result.stderr
    ), result.stderr


def test_db_and_timestamps_work_before_or_after_the_command(db_url: str, tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=str(tmp_path / "elsewhere.db"))
    assert run_cli("db", "upgrade", "--db", db_url, env=env).returncode == 0
    for args in (
        ["--db", db_url, "runs"],
        ["runs", "--db", db_url],
        ["--db", "x.db", "runs", "--db", db_url],
    ):
        result = run_cli(*args, "--format", "json", env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", ""), args
    missing = str(tmp_path / "none.db")
    for args in (["--timestamps", "always", "status"], ["status", "--timestamps", "always"]):
        result = run_cli(*args, "--db", missing, env=env)
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ archiver: error: no archive at .*\n", result.stderr
        )


def test_sync_page_size_sets_the_jobs_per_request_and_limit_still_works_with_a_note(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(30)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    first = run_cli("sync", "--page-size", "10", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["pages"], json.loads(first.stdout)["jobs_seen"]) == (3, 30)
    assert "deprecated" not in first.stderr
    old = run_cli("sync", "--full", "--limit", "15", "--json", env=env)
    assert (old.returncode, json.loads(old.stdout)["pages"]) == (0, 2)
    assert (
        "WARNING archiver: sync --limit is deprecated: it sets the jobs per request, not how many are "
        in (old.stderr)
    )
    old_env = run_cli("sync", "--full", "--json", env={**env, "ARCHIVER_LIMIT": "6"})
    assert json.loads(old_env.stdout)["pages"] == 5
    assert (
        "sync ARCHIVER_LIMIT is deprecated" in old_env.stderr and "use ARCHIVER_PAGE_SIZE" in old_env.stderr
    )


def test_query_binds_named_parameters_on_both_backends(engine: sa.Engine, fake: FakeApi) -> None:
    fake.jobs = make_jobs(20, seed=3)
    sync(api_for(fake), engine)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    model = fake.jobs[0]["model"]
    since = sorted(j["created_at"] for j in fake.jobs)[10]
    sql = "SELECT id, '100%' AS pct FROM jobs WHERE model = :model AND created_at >= :since ORDER BY id"
    result = run_cli(
        "query", sql, "--param", f"model={model}", "--param", f"since={since}", "--format=json", env=env
    )
    assert result.returncode == 0, result.stderr
    expected = sorted(j["id"] for j in fake.jobs if j["model"] == model and j["created_at"] >= since)
    assert json.loads(result.stdout) == [{"id": i, "pct": "100%"} for i in expected]
    missing = run_cli("query", "SELECT id FROM jobs WHERE model = :model", "--param", "other=1", env=env)
    assert missing.returncode == 2
    [line] = missing.stderr.splitlines()
    assert line.startswith("archiver: error: query ") and "model" in line


def test_a_reversed_since_and_until_and_an_unknown_job_id_say_why_instead_of_an_empty_table(
    engine: sa.Engine, fake: FakeApi
) -> None:
    fake.jobs = make_jobs(5)
    sync(api_for(fake), engine)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    reversed_ = run_cli("report", "durations", "--since", "2026-03-01", "--until", "2026-01-01", env=env)
    assert (reversed_.returncode, reversed_.stdout, reversed_.stderr) == (
        2,
        "",
        "archiver: error: report durations: since (2026-03-01) is not before until (2026-01-01): "
        "no job could match\n",
    )
    unknown = run_cli("report", "job_timeline", "--param", "job_id=ftjob-nope", env=env)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (
        2,
        "",
        "archiver: error: no job 'ftjob-nope' in the archive (archiver query can search it)\n",
    )
    known = run_cli("report", "job_timeline", "--param", f"job_id={fake.jobs[0]['id']}", env=env)
    assert known.returncode == 0 and "first seen" in known.stdout


def test_status_json_holds_what_status_prints(engine: sa.Engine, fake: FakeApi) -> None:
    fake.jobs = make_jobs(5)
    sync(api_for(fake), engine)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    text = run_cli("status", "--max-age", "1d", env=env)
    as_json = run_cli("status", "--max-age", "1d", "--json", env=env)
    assert (text.returncode, as_json.returncode) == (0, 0)
    health = json.loads(as_json.stdout)
    assert {k: health[k] for k in ("verdict", "ok", "coverage", "running")} == {
        "verdict": "OK",
        "ok": True,
        "coverage": [],
        "running": None,
    }
    ages = re.compile(r"sync [\d.]+ m?s ago")  # the two commands ran a moment apart
    printed = ages.sub("", text.stdout).splitlines()
    assert [ages.sub("", line) for line in health["lines"]] == printed[:-2]  # then the audit lines
    assert [line.split(":")[0] for line in printed[-2:]] == ["Last checkpoint", "Last verify"]
    assert (health["last_success"]["id"], health["last_success"]["status"]) == (1, "succeeded")


def test_status_during_a_sync_names_it_with_its_pid_start_and_jobs_so_far(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    """A first sync is not "cut off", and a --full over a healthy archive is not just OK."""
    fake.jobs = make_jobs(120)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    for run_id, args, verdict in ((1, ["sync"], "STALE"), (2, ["sync", "--full", "--parallel=1"], "OK")):
        fake.delay = 1.0  # per page: 12 s of pages left while status looks, then no more delay
        argv = [sys.executable, "-m", "archiver", *args, "--page-size=10"]
        with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            running = None
            deadline = time.monotonic() + 60
            while running is None or running["jobs_seen"] < 10:
                assert time.monotonic() < deadline and proc.poll() is None, (
                    "the sync ended before status saw it"
                )
                polled = run_cli("status", "--json", env=env)
                running = json.loads(polled.stdout)["running"] if polled.stdout else None
            text = run_cli("status", env=env)
            fake.delay = 0.0
            assert proc.wait(timeout=60) == 0
        assert (running["run_id"], running["pid"]) == (run_id, str(proc.pid))
        first, during, *rest = text.stdout.splitlines()
        assert first.startswith(f"{verdict}: "), text.stdout
        mode = "full" if "--full" in args else "incremental"
        assert re.fullmatch(
            rf"a sync is running: run {run_id} \({mode}\), pid {proc.pid}, since \S+ \S+Z "
            r"\([\d.]+ (ms|s|min) ago\), \d+0 jobs so far",
            during,
        ), during
        # no "coverage: a run was cut off": the gaps are this run's; then the audit lines
        assert [line.split(":")[0] for line in rest] == ["Last checkpoint", "Last verify"], text.stdout
    after = run_cli("status", env=env)
    assert (after.returncode, len(after.stdout.splitlines())) == (0, 3)  # the verdict, the audit lines


PEAK = (
    "import resource, runpy, sys\n"
    "sys.argv = ['archiver', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('archiver', run_name='__main__')\n"
    "finally:\n"
    "    print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def peak_kb(*args: str, env: dict[str, str]) -> int:
    """The peak resident memory of an archiver command, in kB, its stdout thrown away."""
    argv = [sys.executable, "-c", PEAK, *args]
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.split("peak ")[-1])


def test_query_exports_stream_in_constant_memory(db_url: str) -> None:
    """300,000 rows of 300 characters (90 MB of text) cost no more memory than one row."""
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=db_url)
    assert run_cli("db", "upgrade", env=env).returncode == 0
    if db_url.startswith("postgresql"):
        rows = "SELECT i, repeat('x', 300) AS filler FROM generate_series(1, {n}) AS i"
    else:
        rows = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
            "SELECT i, printf('%.300c', 'x') AS filler FROM n"
        )
    for fmt in ("csv", "json", "markdown"):
        one = peak_kb("query", rows.format(n=1), "--format", fmt, env=env)
        many = peak_kb("query", rows.format(n=300_000), "--format", fmt, env=env)
        assert many - one < 20_000, (fmt, one, many)


def test_streamed_exports_are_exactly_what_render_writes(engine: sa.Engine, fake: FakeApi) -> None:
    fake.jobs = make_jobs(40, seed=5)  # control characters, quotes, emoji, CJK, NUL in the text
    sync(api_for(fake), engine)
    url = engine.url.render_as_string(False)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=url)
    sql = "SELECT * FROM job_summary ORDER BY id"
    with Archive(url) as archive:
        columns, rows = archive.query_table(sql)
    for fmt in ("csv", "json", "markdown"):
        result = subprocess.run(
            [sys.executable, "-m", "archiver", "query", sql, "--format", fmt],
            env=env,
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == render.render(columns, rows, fmt) + "\n", fmt
