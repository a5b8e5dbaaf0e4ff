"""The installed command end to end: a real HTTP server on 127.0.0.1, real databases, subprocesses."""

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from archiver import db
from archiver.cli import cli
from archiver.errors import ApiError
from archiver.health import human
from archiver.ledger import start_run
from archiver.sync import sync
from tests.conftest import assert_archive_equals, cli_env, count_rows, run_cli
from tests.fake_api import API_KEY, FAULTS, VIRTUAL_KEY, FakeApi, make_jobs
from tests.test_sync import api_for


def test_sync_2500_jobs_equals_what_was_served_and_resync_writes_nothing(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(2500, seed=11)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, ARCHIVER_DETAILS="0")  # the job list only
    first = run_cli("sync", "--json", env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert {k: summary[k] for k in ("pages", "requests", "jobs_seen", "jobs_inserted", "jobs_updated")} == {
        "pages": 25,
        "requests": 25,
        "jobs_seen": 2500,
        "jobs_inserted": 2500,
        "jobs_updated": 0,
    }
    assert "Migrated the archive's schema from empty to" in first.stderr
    assert re.search(
        r"Synced 2,500 jobs \(2,500 new, 0 changed, 0 unchanged\) in 25 pages, 25 requests, "
        r"into \S+ in (\d+ ms|[\d.]+ s)$",
        first.stderr,
        re.M,
    )
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)

    second = run_cli("sync", "--full", env=env)
    assert second.returncode == 0, second.stderr
    assert "(0 new, 0 changed, 2,500 unchanged) in 25 pages" in second.stderr
    assert "Migrated" not in second.stderr
    assert_archive_equals(engine, fake.jobs)
    assert count_rows(engine, "job_history") == 2500
    engine.dispose()


def test_sync_defaults_to_archive_db_in_the_current_directory(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(5)
    result = run_cli("sync", env=cli_env(base_url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sqlite:///archive.db" in result.stderr
    assert (tmp_path / "archive.db").exists()
    assert result.stdout == ""


@pytest.mark.parametrize("unset", [("PORTKEY_VIRTUAL_KEY",), ()])
def test_missing_routing_exits_2_before_any_request(
    tmp_path: Path, fake: FakeApi, base_url: str, unset: tuple[str, ...]
) -> None:
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"), PORTKEY_VIRTUAL_KEY="")
    result = run_cli("sync", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "archiver: error: Portkey is not configured: set one of PORTKEY_VIRTUAL_KEY "
        "(or PORTKEY_PROVIDER_VIRTUAL_KEY), PORTKEY_PROVIDER or PORTKEY_CONFIG (see archiver sync --help)"
    ]
    assert fake.requests == []


def test_provider_mode_sends_portkey_headers(tmp_path: Path, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(3)
    fake.required = {
        "x-portkey-api-key": API_KEY,
        "x-portkey-provider": "openai",
        "authorization": "Bearer sk-provider-1",
        "x-portkey-custom-host": "http://localhost:9/v1",
    }
    env = cli_env(
        base_url,
        ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"),
        PORTKEY_VIRTUAL_KEY="",
        PORTKEY_PROVIDER="openai",
        PORTKEY_PROVIDER_API_KEY="sk-provider-1",
        PORTKEY_CUSTOM_HOST="http://localhost:9/v1",
    )
    result = run_cli("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert "x-portkey-virtual-key" not in fake.requests[0].headers


def test_provider_virtual_key_name_from_portkeys_example(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    env = cli_env(
        base_url,
        ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"),
        PORTKEY_VIRTUAL_KEY="",
        PORTKEY_PROVIDER_VIRTUAL_KEY=VIRTUAL_KEY,
    )
    result = run_cli("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert fake.requests[0].headers["x-portkey-virtual-key"] == VIRTUAL_KEY


def test_no_migrate_refuses_an_empty_archive(tmp_path: Path, base_url: str) -> None:
    result = run_cli(
        "sync", "--no-migrate", env=cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    )
    assert result.returncode == 2
    assert "run `archiver db upgrade` or drop --no-migrate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_upgrade_and_current(db_url: str) -> None:
    if db_url.startswith("postgresql"):  # the test server trusts loopback, so any password is accepted
        db_url = db_url.replace("postgres@", "postgres:db-pw-canary@")
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=db_url)
    before = run_cli("db", "current", env=env)
    if db_url.startswith("postgresql"):  # an empty database
        assert (before.returncode, before.stdout.startswith("empty (head is ")) == (0, True)
    else:  # no file: db current creates none (tests/test_read_only.py)
        assert (before.returncode, "no archive at" in before.stderr) == (2, True)
    up = run_cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    after = run_cli("db", "current", env=env)
    assert after.stdout.strip() == f"{db.head()} (head)"
    if db_url.startswith("postgresql"):
        assert ":***@" in up.stderr
    assert "db-pw-canary" not in up.stderr + up.stdout + after.stdout + after.stderr


def test_version_and_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("archiver, version ")
    commands = [
        [name, *([sub] if sub else [])]
        for name, cmd in cli.commands.items()
        for sub in (getattr(cmd, "commands", None) or [None])
    ]
    # sync, routes, demo, db upgrade|current, runs, status, verify, report, query, tables, dashboard,
    # datasette-metadata
    assert len(commands) == 13
    for args in commands:
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        assert re.search(r"Examples?( \(.*\))?:\n  +archiver ", result.output), args
    assert "PORTKEY_VIRTUAL_KEY" in runner.invoke(cli, ["sync", "--help"]).output


def test_version_and_help_load_neither_the_database_nor_the_http_stack() -> None:
    """Start-up: each command imports what it needs when it runs (benchmarks/run.py times it)."""
    probe = (
        "import sys; from archiver.cli import cli, main; "
        "print([m for m in ('sqlalchemy', 'httpx', 'alembic', 'psycopg') if m in sys.modules]); "
        "from archiver import render, reports; "
        "print((main.FORMATS, main.MAX_INT) == (render.FORMATS, reports.MAX_INT))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["[]", "True"]


def test_only_a_migrating_sync_loads_alembic_and_none_loads_what_other_commands_need(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    """Start-up: a sync of an archive at head loads no Alembic (nor what it brings: mako, pygments;
    a first sync migrates with it), and no sync loads httpx's own command line (rich) or the report
    tables' wcwidth; as the interpreter lists its imports."""
    fake.jobs = make_jobs(30)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    for run in ("first", "nothing new"):
        argv = [sys.executable, "-X", "importtime", "-m", "archiver", "sync"]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        loaded = {line.split("|")[-1].strip().split(".")[0] for line in lines if "|" in line}
        assert "sqlalchemy" in loaded
        assert ("alembic" in loaded) == (run == "first")
        unused = {"rich", "wcwidth"} | ({"mako", "pygments"} if run != "first" else set())  # Alembic's
        assert loaded & unused == set()
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


def test_unreachable_api_is_one_line_exit_1(tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=str(db_path), ARCHIVER_MAX_RETRIES="0")
    result = run_cli("sync", env=env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(
        "archiver: error: GET http://127.0.0.1:9/v1/fine_tuning/jobs: cannot connect to 127.0.0.1"
    )
    assert "Traceback" not in result.stderr
    engine = db.make_engine(db.parse_url(str(db_path)))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM sync_runs")).scalar_one() == "failed"
    engine.dispose()


def test_runs_and_status(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(30)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    if not db_url.startswith("postgresql"):
        missing = run_cli("status", env=env)
        assert (missing.returncode, missing.stderr) == (
            2,
            f"archiver: error: no archive at {db_url}: run `archiver sync` first\n",
        )
    assert run_cli("runs", env=env).returncode == 2
    upgraded, again = (run_cli("db", "upgrade", env=env) for _ in range(2))
    assert (upgraded.returncode, again.returncode) == (0, 0)
    assert upgraded.stderr.startswith(f"Migrated the archive's schema from empty to {db.head()} (head) in ")
    assert again.stderr.startswith(f"Schema at {db.head()} (head) in ")
    never = run_cli("status", env=env)
    assert (never.returncode, verdict_of(never.stdout)) == (1, "STALE: never synced successfully\n")
    assert run_cli("sync", env=env).returncode == 0
    first = len(fake.requests)  # the list's page, then the details of the 25 final jobs
    fake.outage_after = 0
    assert run_cli("sync", "--max-retries=0", env=env).returncode == 1
    runs = run_cli("runs", "--format=json", env=env)
    assert runs.returncode == 0, runs.stderr
    rows = json.loads(runs.stdout)
    assert [(r["id"], r["mode"], r["status"], r["pages"], r["requests"], r["new"]) for r in rows] == [
        (2, "incremental", "failed", 0, 1, 0),
        (1, "incremental", "succeeded", 1, first, 30),
    ]
    assert rows[0]["error"].startswith("GET http://127.0.0.1:")
    assert "HTTP 503" in rows[0]["error"]
    table = run_cli("runs", env=env).stdout.splitlines()
    assert table[0].split() == [
        "id",
        "route",
        "started_utc",
        "mode",
        "status",
        "duration_seconds",
        "pages",
        "requests",
        "new",
        "changed",
        "unchanged",
        "rejected",
        "error",
    ]
    assert len(table) == 4
    assert len(run_cli("runs", "--limit=1", env=env).stdout.splitlines()) == 3
    failed = run_cli("status", "--max-age", "2h", env=env)
    assert failed.returncode == 1
    verdict, success = verdict_of(failed.stdout).splitlines()
    assert re.match(
        r"FAILED: last run 2 failed [\d.]+ m?s ago: GET http://127.0.0.1:\d+/v1/fine_tuning/jobs: ", verdict
    )
    assert re.match(r"last successful sync [\d.]+ m?s ago \(max age 2 h\): run 1 at ", success)
    fake.outage_after = None
    assert run_cli("sync", env=env).returncode == 0
    assert run_cli("status", "--max-age", "2h", env=env).returncode == 0
    stale = run_cli("status", "--max-age", "0s", env=env)
    assert stale.returncode == 1
    assert re.fullmatch(
        r"STALE: last successful sync \S+ m?s ago \(max age 0 ms\): run 3 at \S+ \S+Z\n",
        verdict_of(stale.stdout),
    )
    bad = run_cli("status", "--max-age", "soon", env=env)
    assert bad.returncode == 2
    assert "Invalid value for '--max-age'" in bad.stderr and "'soon' is not an age" in bad.stderr


def test_summary_counts_in_words_and_times_in_human_units(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(1)
    result = run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=db_url))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"Synced 1 job \(1 new, 0 changed, 0 unchanged\) in 1 page, 1 request, into \S+ in \d{1,3} ms\n",
        result.stderr.splitlines(keepends=True)[-1],
    ), result.stderr
    assert [human(s) for s in (0.085, 0.9996, 1, 12.34, 59.96, 270, 11520, 7200, 129600)] == [
        "85 ms",
        "1 s",
        "1 s",
        "12.3 s",
        "1 min",
        "4.5 min",
        "3.2 h",
        "2 h",
        "1.5 d",
    ]


def test_runs_limit_too_large_is_a_usage_error_naming_the_option(db_url: str) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=db_url)
    assert run_cli("db", "upgrade", env=env).returncode == 0
    result = run_cli("runs", "--limit", "99999999999999999999", env=env)
    assert result.returncode == 2, result.stderr
    assert "Invalid value for '--limit'" in result.stderr
    assert "Traceback" not in result.stderr


def verdict_of(status: str) -> str:
    """What `archiver status` prints, but its audit lines (the last checkpoint and verify: test_audit.py)."""
    lines = status.splitlines(keepends=True)
    assert [line.split(":")[0] for line in lines[-2:]] == ["Last checkpoint", "Last verify"], status
    return "".join(lines[:-2])


def test_status_says_ok_stale_or_failed_and_why_in_human_units(engine: sa.Engine, fake: FakeApi) -> None:
    fake.jobs = make_jobs(3)
    sync(api_for(fake), engine)
    now = time.time()
    with engine.begin() as conn:  # the run ended 3.2 hours ago
        conn.execute(
            sa.text("UPDATE sync_runs SET started_at = :t - 60, finished_at = :t"), {"t": now - 11520}
        )
    env = cli_env(
        "http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(hide_password=False)
    )
    stale = run_cli("status", "--max-age", "2h", env=env)
    at = datetime.fromtimestamp(now - 11520, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    assert (stale.returncode, verdict_of(stale.stdout)) == (
        1,
        f"STALE: last successful sync 3.2 h ago (max age 2 h): run 1 at {at}\n",
    )
    ok = run_cli("status", "--max-age", "1d", env=env)
    assert (ok.returncode, verdict_of(ok.stdout)) == (
        0,
        f"OK: last successful sync 3.2 h ago (max age 1 d): run 1 at {at}\n",
    )
    fake.outage_after = 0
    with pytest.raises(ApiError):
        sync(api_for(fake, max_retries=0), engine)
    failed = run_cli("status", env=env)
    assert failed.returncode == 1
    assert re.fullmatch(
        r"FAILED: last run 2 failed [\d.]+ m?s ago: GET http://fake.test/v1/fine_tuning/jobs: HTTP 503.*\n"
        rf"last successful sync 3.2 h ago: run 1 at {at}\n",
        verdict_of(failed.stdout),
    )
    with engine.begin() as conn:  # a run left marked running, with no sync holding the lock: killed
        run_id = start_run(conn, "incremental", "http://fake.test/v1", now - 600)
    killed = run_cli("status", env=env)
    assert killed.returncode == 1
    assert re.fullmatch(
        rf"FAILED: last run {run_id} started 10(\.\d)? min ago and is marked running, "
        "but no sync holds the lock: it was killed",
        killed.stdout.splitlines()[0],
    )


@pytest.mark.parametrize(
    ("virtual_key", "missing"),
    [
        ("", "PORTKEY_API_KEY and one of PORTKEY_VIRTUAL_KEY (or PORTKEY_PROVIDER_VIRTUAL_KEY), "),
        (VIRTUAL_KEY, "PORTKEY_API_KEY (see archiver sync --help)"),
    ],
)
def test_missing_api_key_is_named_before_any_file_is_created(
    tmp_path: Path, virtual_key: str, missing: str
) -> None:
    env = cli_env("", PORTKEY_API_KEY="", PORTKEY_VIRTUAL_KEY=virtual_key, ARCHIVER_MAX_RETRIES="0")
    del env["PORTKEY_BASE_URL"]  # Portkey's hosted API, which needs the key
    result = run_cli("sync", "--timeout=2", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"archiver: error: Portkey is not configured: set {missing}")
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_at_the_base_url_fails_at_once(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(3)
    fake.faults.extend(FAULTS["html200"]() for _ in range(10))
    started = time.monotonic()
    result = run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=db_url))
    assert time.monotonic() - started < 8  # 5 retries with backoff took 10 s or more
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"archiver: error: GET {base_url}/fine_tuning/jobs: this is not the Portkey API (got text/html); "
        "check PORTKEY_BASE_URL"
    )
    assert len(fake.requests) == 1


STAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (.*)")


def test_stderr_lines_carry_a_utc_timestamp_unless_stderr_is_a_terminal(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(3)
    fake.faults.append(FAULTS["503"]())
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    del env["ARCHIVER_TIMESTAMPS"]  # the default: auto
    before = datetime.now(UTC).replace(microsecond=0)
    result = run_cli("sync", "--retry-backoff=0", env=env)
    assert result.returncode == 0, result.stderr
    lines = [STAMPED.fullmatch(line) for line in result.stderr.splitlines()]
    assert all(lines), result.stderr
    assert [m[1].split(":")[0] for m in lines if m] == [
        "Migrated the archive's schema from empty to " + db.head(),
        "WARNING archiver.client",
        "Synced 3 jobs (3 new, 0 changed, 0 unchanged) in 1 page, 2 requests, into sqlite",
    ]
    stamps = [
        datetime.strptime(line[:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for line in result.stderr.splitlines()
    ]
    assert all(before <= s <= datetime.now(UTC) for s in stamps)

    primary, secondary = pty.openpty()  # stderr a terminal: no timestamp
    with subprocess.Popen(
        [sys.executable, "-m", "archiver", "status", "--db", str(tmp_path / "none.db")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=secondary,
    ) as proc:
        os.close(secondary)
        assert proc.wait(timeout=60) == 2
    seen = b""
    with contextlib.suppress(OSError):  # EIO once everything the child wrote has been read
        while chunk := os.read(primary, 1024):
            seen += chunk
    os.close(primary)
    assert seen.decode().startswith("archiver: error: no archive at ")


@pytest.mark.parametrize("where", [("-q", "sync"), ("sync", "--quiet")])
def test_quiet_prints_nothing_on_success_but_still_warnings_and_errors(
    db_url: str, fake: FakeApi, base_url: str, where: tuple[str, ...]
) -> None:
    fake.jobs = make_jobs(3)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    quiet = run_cli(*where, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    fake.faults.append(FAULTS["503"]())
    warned = run_cli(*where, "--retry-backoff=0", env=env)
    assert warned.returncode == 0
    [warning] = warned.stderr.splitlines()
    assert warning.startswith("WARNING archiver.client: GET ") and "retrying" in warning
    fake.outage_after = 0
    failed = run_cli(*where, "--max-retries=0", env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("archiver: error: GET ")
    assert run_cli("-q", "db", "upgrade", env=env).stderr == ""


def test_sync_json_reports_failures_too(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(3)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    ok = run_cli("sync", "--json", env=env)
    assert {k: v for k, v in json.loads(ok.stdout).items() if k != "seconds"} == {
        "status": "succeeded",
        "error": None,
        "exit_code": 0,
        "run_id": 1,
        "mode": "incremental",
        "pages": 1,
        "requests": 1,
        "jobs_seen": 3,
        "jobs_inserted": 3,
        "jobs_updated": 0,
        "jobs_unchanged": 0,
        "jobs_rejected": 0,
        "jobs_vanished": 0,
        "unrefreshed": [],
        "database": json.loads(ok.stdout)["database"],
        "partial": None,  # or why part of the history is unreachable through this route
        "checkpoint": json.loads(ok.stdout)["checkpoint"],  # test_audit.py checks it
    }
    fake.outage_after = 0
    failed = run_cli("sync", "--json", "--max-retries=0", env=env)
    assert failed.returncode == 1
    summary = json.loads(failed.stdout)
    assert summary["error"].startswith("GET http://127.0.0.1:") and "HTTP 503" in summary["error"]
    assert {k: v for k, v in summary.items() if k not in ("error", "database")} == {
        "status": "failed",
        "exit_code": 1,
        "run_id": 2,
        "mode": "incremental",
        "pages": 0,
        "requests": 1,
        "jobs_seen": 0,
        "jobs_inserted": 0,
        "jobs_updated": 0,
        "jobs_unchanged": 0,
        "jobs_rejected": 0,
        "checkpoint": summary["checkpoint"],  # the failed run's row is a link too: test_audit.py
    }
    assert set(summary["checkpoint"]) == {"seq", "hash"}
    unconfigured = run_cli("sync", "--json", env={**env, "PORTKEY_VIRTUAL_KEY": ""})
    assert unconfigured.returncode == 2
    assert json.loads(unconfigured.stdout) == {
        "status": "failed",
        "error": unconfigured.stderr.removeprefix("archiver: error: ").strip(),
        "exit_code": 2,
    }
    for usage in (["--json", "--page-size=0"], ["--parallel=x", "--json"], ["--parallel=3", "--json"]):
        misused = run_cli("sync", *usage, env=env)
        assert misused.returncode == 2
        assert json.loads(misused.stdout) == {
            "status": "failed",
            "error": misused.stderr.removeprefix("archiver: error: ").strip(),
            "exit_code": 2,
        }


def test_verbosity_works_after_the_subcommand(tmp_path: Path, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(3)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    info = run_cli("sync", "-v", env=env)
    assert "INFO httpx: HTTP Request: GET " in info.stderr and "DEBUG" not in info.stderr
    debug = run_cli("sync", "-vv", env=env)
    assert "DEBUG " in debug.stderr
    both = run_cli("-v", "sync", "-v", env=env)
    assert "DEBUG " in both.stderr


def test_sync_json_with_rejected_items_says_exit_3(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = [*make_jobs(3), "not a job"]
    result = run_cli("sync", "--json", env=cli_env(base_url, ARCHIVER_DATABASE_URL=db_url))
    assert result.returncode == 3
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("status", "error", "exit_code", "jobs_seen", "jobs_rejected")} == {
        "status": "succeeded",
        "error": "1 list item was not a job; it is kept in rejected_items",
        "exit_code": 3,
        "jobs_seen": 3,
        "jobs_rejected": 1,
    }
