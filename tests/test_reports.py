"""Every report and view on SQLite and PostgreSQL, against a small archive with known answers."""

import csv
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import render, reports
from archiver.sync import sync
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi
from tests.test_detail_reports import DETAIL_REPORTS
from tests.test_sync import api_for

T0 = 1767225600  # 2026-01-01 00:00:00 UTC
DAY = 86400
AUTO = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}


def job(
    i: str, day: float, status: str, model: str = "gpt-4o-mini", took: int | None = None, **extra: Any
) -> dict[str, Any]:
    created = int(T0 + day * DAY)
    return {
        "id": f"ftjob-{i}",
        "object": "fine_tuning.job",
        "created_at": created,
        "status": status,
        "model": model,
        "organization_id": "org-1",
        "training_file": f"file-t{i}",
        "validation_file": None,
        "seed": 7,
        "error": None,
        "fine_tuned_model": None,
        "trained_tokens": None,
        "result_files": [],
        "finished_at": created + took if took else None,
        "estimated_finish": None,
        "hyperparameters": AUTO,
        "integrations": [],
        "metadata": None,
        **extra,
    }


def done(i: str, day: float, took: int, tokens: int, model: str = "gpt-4o-mini", **extra: Any) -> dict:
    return job(
        i,
        day,
        "succeeded",
        model,
        took,
        fine_tuned_model=f"ft:{model}:org-1::{i}",
        trained_tokens=tokens,
        **extra,
    )


def wandb(project: str, entity: str | None, tags: list[str]) -> list[dict[str, Any]]:
    return [{"type": "wandb", "wandb": {"project": project, "entity": entity, "tags": tags}}]


BAD_LINE = {"code": "invalid_file", "message": "bad line 3", "param": "training_file"}


def history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The source as the first and as the second sync saw it (newest first)."""
    j1 = job(
        "a1",
        40,
        "queued",
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 0.5}
            },
        },
        integrations=wandb("alpha", "team", ["x", "y"]),
    )
    j2 = job(
        "a2",
        35,
        "running",
        user_provided_suffix="nightly",
        estimated_finish=int(T0 + 35 * DAY + 999),
        integrations=wandb("alpha", None, ["x"]),
    )
    rest = [
        done("a8", 15.5, 2200, 2000, integrations=wandb("beta", "team", [])),
        done("a7", 15, 400, 1000),
        job("a3", 20, "failed", took=300, error=BAD_LINE),
        done("a4", 10, 2000, 7000, model="gpt-3.5-turbo", result_files=["file-r4"]),
        job("a5", 5, "failed", "gpt-3.5-turbo", 600, error=BAD_LINE),
        job("a6", 2, "cancelled", took=100, error={}, hyperparameters=None),
    ]
    rest.sort(key=lambda j: -j["created_at"])
    first = [j1, j2, *rest]
    j1b = {**j1, "status": "running", "estimated_finish": j1["created_at"] + 3600}
    j2b = {
        **j2,
        "status": "succeeded",
        "estimated_finish": None,
        "finished_at": j2["created_at"] + 1000,
        "fine_tuned_model": "ft:gpt-4o-mini:org-1::a2",
        "trained_tokens": 5000,
        "result_files": ["file-r2a", "file-r2b"],
    }
    return first, [j1b, j2b, *rest]


def build_archive(engine: sa.Engine) -> None:
    """Two syncs of history() into a migrated, empty archive, with every clock fixed: the archive
    the report tests and the README's sample outputs (tests/readme_samples.py) come from."""
    first, second = history()
    fake = FakeApi(first)
    sync(api_for(fake), engine)
    fake.jobs = second
    sync(api_for(fake), engine)
    with engine.begin() as conn:  # fixed clocks, so that the answers are exact
        conn.execute(
            sa.text(
                "UPDATE sync_runs SET started_at = :s + (id - 1) * 43200, "
                "finished_at = :s + (id - 1) * 43200 + id + 0.5"
            ),
            {"s": T0 + 40.5 * DAY},
        )
        conn.execute(
            sa.text(
                "UPDATE job_history SET observed_at = "
                "(SELECT started_at FROM sync_runs r WHERE r.id = job_history.sync_run_id)"
            )
        )


@pytest.fixture
def archive(engine: sa.Engine) -> sa.Engine:
    build_archive(engine)
    return engine


NOW = T0 + 41 * DAY
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "status_overview": [
        ("succeeded", 4, "2026-01-11 00:00:00", "2026-02-05 00:00:00"),
        ("failed", 2, "2026-01-06 00:00:00", "2026-01-21 00:00:00"),
        ("cancelled", 1, "2026-01-03 00:00:00", "2026-01-03 00:00:00"),
        ("running", 1, "2026-02-10 00:00:00", "2026-02-10 00:00:00"),
    ],
    "monthly_activity": [("2026-01", 6, 3, 2, 10000), ("2026-02", 2, 1, 0, 5000)],
    "failure_reasons": [
        ("invalid_file", "bad line 3", "gpt-3.5-turbo", 1, "2026-01-06 00:00:00"),
        ("invalid_file", "bad line 3", "gpt-4o-mini", 1, "2026-01-21 00:00:00"),
    ],
    "durations": [
        ("gpt-3.5-turbo", "failed", 1, 600, 600.0, 600, 600, 600),
        ("gpt-3.5-turbo", "succeeded", 1, 2000, 2000.0, 2000, 2000, 2000),
        ("gpt-4o-mini", "cancelled", 1, 100, 100.0, 100, 100, 100),
        ("gpt-4o-mini", "failed", 1, 300, 300.0, 300, 300, 300),
        ("gpt-4o-mini", "succeeded", 3, 400, 1200.0, 2200, 1000, 2200),
    ],
    "fine_tuned_models": [
        ("ft:gpt-4o-mini:org-1::a2", "ftjob-a2", "gpt-4o-mini", "nightly", "2026-02-05 00:16:40", 5000),
        ("ft:gpt-4o-mini:org-1::a8", "ftjob-a8", "gpt-4o-mini", None, "2026-01-16 12:36:40", 2000),
        ("ft:gpt-4o-mini:org-1::a7", "ftjob-a7", "gpt-4o-mini", None, "2026-01-16 00:06:40", 1000),
        ("ft:gpt-3.5-turbo:org-1::a4", "ftjob-a4", "gpt-3.5-turbo", None, "2026-01-11 00:33:20", 7000),
    ],
    "wandb_usage": [
        ("alpha", "team", "x", 1),
        ("alpha", "team", "y", 1),
        ("alpha", None, "x", 1),
        ("beta", "team", None, 1),
    ],
    "hyperparameters": [
        ("gpt-3.5-turbo", None, "auto", "auto", "auto", 2),
        ("gpt-4o-mini", "supervised", "3", "auto", "0.5", 1),
        ("gpt-4o-mini", None, "auto", "auto", "auto", 4),
        ("gpt-4o-mini", None, None, None, None, 1),
    ],
    "in_flight": [
        (
            "ftjob-a1",
            "running",
            "gpt-4o-mini",
            "2026-02-10 00:00:00",
            24,
            "2026-02-11 00:00:00",
            "2026-02-10 01:00:00",
        ),
    ],
    "sync_health": [
        (2, "default", "2026-02-11 00:00:00", "incremental", "succeeded", 2.5, 1, 1, 0, 2, 6, 0, None),
        (1, "default", "2026-02-10 12:00:00", "incremental", "succeeded", 1.5, 1, 1, 8, 0, 0, 0, None),
    ],
}
TIMELINES = {
    "ftjob-a1": [
        ("2026-02-10 12:00:00", 1, "queued", "first seen"),
        ("2026-02-11 00:00:00", 2, "running", "status estimated_finish"),
    ],
    "ftjob-a2": [
        ("2026-02-10 12:00:00", 1, "running", "first seen"),
        (
            "2026-02-11 00:00:00",
            2,
            "succeeded",
            "status finished_at estimated_finish fine_tuned_model trained_tokens result_files",
        ),
    ],
    "ftjob-a7": [("2026-02-10 12:00:00", 1, "succeeded", "first seen")],
    "ftjob-none": [],
}
ALL = {"since": 0, "until": 253402300799, "now": NOW, "limit": 1000}


def test_every_report_is_tested() -> None:
    assert set(reports.names()) == {*EXPECTED, "job_timeline", *DETAIL_REPORTS}  # those: test_detail_reports


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report_gives_the_exact_rows(archive: sa.Engine, name: str) -> None:
    with archive.connect() as conn:
        _, rows = reports.run_report(conn, name, dict(ALL))
    assert rows == EXPECTED[name]


@pytest.mark.parametrize("job_id", sorted(TIMELINES))
def test_job_timeline(archive: sa.Engine, job_id: str) -> None:
    with archive.connect() as conn:
        columns, rows = reports.run_report(conn, "job_timeline", {**ALL, "job_id": job_id})
    assert columns == ["observed_utc", "sync_run_id", "status", "changed"]
    assert rows == TIMELINES[job_id]


def test_since_and_until_filter_on_creation(archive: sa.Engine) -> None:
    window = {**ALL, "since": T0 + 10 * DAY, "until": T0 + 20 * DAY - 1}  # 11 Jan to 20 Jan
    with archive.connect() as conn:
        _, rows = reports.run_report(conn, "monthly_activity", window)
    assert rows == [("2026-01", 3, 3, 0, 10000)]


def test_job_summary_view(archive: sa.Engine) -> None:
    with archive.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM job_summary WHERE id = 'ftjob-a2'")).one()._asdict()
    assert row == {
        "id": "ftjob-a2",
        "status": "succeeded",
        "status_class": "succeeded",
        "provider": "unknown",
        "vanished_at": None,
        "vanished_utc": None,
        "model": "gpt-4o-mini",
        "fine_tuned_model": "ft:gpt-4o-mini:org-1::a2",
        "method_type": None,
        "user_provided_suffix": "nightly",
        "created_at": T0 + 35 * DAY,
        "created_utc": "2026-02-05 00:00:00",
        "created_month": "2026-02",
        "finished_at": T0 + 35 * DAY + 1000,
        "finished_utc": "2026-02-05 00:16:40",
        "duration_seconds": 1000,
        "estimated_finish_utc": None,
        "trained_tokens": 5000,
        "error_code": None,
        "error_message": None,
        "result_file_count": 2,
        "wandb_project": "alpha",
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }


def archive_url(archive: sa.Engine) -> str:
    return archive.url.render_as_string(hide_password=False)


def test_formats(archive: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=archive_url(archive))
    out = {fmt: run_cli("report", "monthly_activity", f"--format={fmt}", env=env) for fmt in render.FORMATS}
    assert all(r.returncode == 0 for r in out.values()), [r.stderr for r in out.values()]
    assert json.loads(out["json"].stdout) == [
        {"month": "2026-01", "created": 6, "succeeded": 3, "failed": 2, "trained_tokens": 10000},
        {"month": "2026-02", "created": 2, "succeeded": 1, "failed": 0, "trained_tokens": 5000},
    ]
    assert list(csv.reader(io.StringIO(out["csv"].stdout))) == [
        ["month", "created", "succeeded", "failed", "trained_tokens"],
        ["2026-01", "6", "3", "2", "10000"],
        ["2026-02", "2", "1", "0", "5000"],
    ]
    assert out["table"].stdout.splitlines() == [
        "month    created  succeeded  failed  trained_tokens",
        "-------  -------  ---------  ------  --------------",
        "2026-01  6        3          2       10000",
        "2026-02  2        1          0       5000",
    ]
    assert out["markdown"].stdout.splitlines() == [
        "| month | created | succeeded | failed | trained_tokens |",
        "| --- | --- | --- | --- | --- |",
        "| 2026-01 | 6 | 3 | 2 | 10000 |",
        "| 2026-02 | 2 | 1 | 0 | 5000 |",
    ]


def test_query_is_read_only(archive: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=archive_url(archive))
    ok = run_cli("query", "SELECT count(*) AS n FROM jobs", "--format=json", env=env)
    assert (ok.returncode, json.loads(ok.stdout)) == (0, [{"n": 8}])
    for sql in (
        "DELETE FROM jobs",
        "UPDATE jobs SET status = 'x'",
        "DROP TABLE tags",
        "INSERT INTO errors (job_id, code) VALUES ('ftjob-a1', 'x')",
    ):
        refused = run_cli("query", sql, env=env)
        assert refused.returncode == 2, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("archiver: error: query failed: ")
        assert re.search(r"read-only|readonly", line), line
    with archive.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar() == 8
        assert conn.execute(sa.text("SELECT count(*) FROM tags")).scalar() == 3


def test_report_usage_errors(archive: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=archive_url(archive))
    listing = run_cli("report", env=env)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[2:]] == reports.names()
    assert "Jobs per status, with the oldest and newest creation time (UTC)." in listing.stdout
    cases = {
        ("report", "nope"): "no report named 'nope'; the reports are: durations, failure_reasons,",
        ("report", "job_timeline"): "report job_timeline needs --param job_id=...",
        (
            "report",
            "status_overview",
            "--param",
            "job_id=x",
        ): "report status_overview takes no parameter job_id",
        ("report", "status_overview", "--since", "last week"): "is not a date like 2026-01-31",
        ("report", "status_overview", "--param", "oops"): "'oops' is not KEY=VALUE",
        ("query", "SELEC 1"): "query failed: ",
    }
    for args, message in cases.items():
        result = run_cli(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_readme_queries_run(archive: sa.Engine) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.S)
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    assert len(statements) >= 8
    with archive.connect() as conn:
        for sql in statements:
            columns, _ = reports.run_query(
                conn, "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
            )
            assert columns, sql


def test_in_flight_status_seen_since_is_the_start_of_the_current_stretch(engine: sa.Engine) -> None:
    """running -> paused -> running (-> running with another change): since the second `running`."""
    base = job("b1", 40, "running", estimated_finish=int(T0 + 41 * DAY))
    versions = [
        base,
        {**base, "status": "paused"},
        {**base, "status": "running"},
        {**base, "status": "running", "estimated_finish": int(T0 + 42 * DAY)},
    ]
    fake = FakeApi()
    for version in versions:
        fake.jobs = [version]
        sync(api_for(fake), engine)
    with engine.begin() as conn:  # run n observed at day 40 + n
        conn.execute(
            sa.text("UPDATE job_history SET observed_at = :t0 + (40 + sync_run_id) * 86400"), {"t0": T0}
        )
        conn.execute(sa.text("UPDATE sync_runs SET started_at = :t0 + (40 + id) * 86400"), {"t0": T0})
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM job_history")).scalar() == 4
        _, rows = reports.run_report(conn, "in_flight", {**ALL, "now": T0 + 45 * DAY})
    assert rows == [
        (
            "ftjob-b1",
            "running",
            "gpt-4o-mini",
            "2026-02-10 00:00:00",
            120,
            "2026-02-13 00:00:00",
            "2026-02-12 00:00:00",
        )
    ]


def test_tables_escape_control_characters_and_count_display_cells() -> None:
    columns = ["name", "n"]
    rows = [
        ("a\nb\r\tc", 1),
        ("\x1b[2Jesc\x85\u2028\u2029\x7f", 2.0 / 3),
        ("日本語", 10),
        ("🚀x", None),
        ("e\u0301", 12.5),
    ]
    assert render.render(columns, rows, "table").splitlines() == [
        "name                            n",
        "------------------------------  -----",
        "a\\nb\\r\\tc                       1",
        "\\x1b[2Jesc\\x85\\u2028\\u2029\\x7f  0.667",
        "日本語                          10",
        "🚀x",
        "e\u0301                               12.5",
    ]
    assert render.render(columns, rows[:1], "markdown").splitlines() == [
        "| name | n |",
        "| --- | --- |",
        "| a\\nb\\r\\tc | 1 |",
    ]
    assert list(csv.reader(io.StringIO(render.render(columns, rows, "csv"), newline=""))) == [
        columns,
        *[[v, "" if n is None else repr(n)] for v, n in rows],
    ]
    assert [tuple(r.values()) for r in json.loads(render.render(columns, rows, "json"))] == rows


HOSTILE = ["日本語\nline two", "🚀 done\r\tx\u2028y"]


def test_report_output_stays_a_table_on_both_backends(engine: sa.Engine) -> None:
    served = [
        done(str(i), 10 + i, 100, 1000, user_provided_suffix=suffix) for i, suffix in enumerate(HOSTILE)
    ]
    sync(api_for(FakeApi(served[::-1])), engine)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=archive_url(engine))
    out = {f: run_cli("report", "fine_tuned_models", f"--format={f}", env=env) for f in render.FORMATS}
    assert all(r.returncode == 0 for r in out.values()), [r.stderr for r in out.values()]
    table = out["table"].stdout.splitlines()
    assert [line.split("  ")[0] for line in table] == [
        "fine_tuned_model",
        "-" * 23,
        "ft:gpt-4o-mini:org-1::1",
        "ft:gpt-4o-mini:org-1::0",
    ]
    suffix_at = table[0].index("suffix")
    assert [line[suffix_at:].split("  ")[0] for line in table[2:]] == [
        "🚀 done\\r\\tx\\u2028y",
        "日本語\\nline two",
    ]
    # the next column starts in the same terminal cell on every line
    finished = [render.width(line[: line.index("2026-")]) for line in table[2:]]
    assert finished == [render.width(table[0][: table[0].index("finished_utc")])] * 2
    # byte for byte: text mode would turn the \r into a newline
    exact = {
        f: subprocess.run(
            [sys.executable, "-m", "archiver", "report", "fine_tuned_models", f"--format={f}"],
            env=env,
            capture_output=True,
            check=True,
        ).stdout.decode()
        for f in ("csv", "json")
    }
    assert [row[3] for row in csv.reader(io.StringIO(exact["csv"], newline=""))][1:] == HOSTILE[::-1]
    assert [row["suffix"] for row in json.loads(exact["json"])] == HOSTILE[::-1]


def test_every_report_declares_exactly_the_parameters_it_binds() -> None:
    for name in reports.names():
        declared = reports.parameters(name)
        assert {p.name for p in declared} == set(reports.BIND.findall(reports.load(name))), name
        assert all(p.help and p.type in reports.TYPES for p in declared), name
    assert [(p.name, p.type, p.default) for p in reports.parameters("sync_health")] == [
        ("since", "time", "1970-01-01"),
        ("until", "time", "9999-12-31T23:59:59"),
        ("limit", "int", "100"),
        ("route", "text", "*"),
    ]
    assert [p.required for p in reports.parameters("job_timeline")] == [True]


def test_report_parameters_have_defaults_and_are_checked_up_front(archive: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=archive_url(archive))
    health = run_cli("report", "sync_health", "--format=json", env=env)
    assert health.returncode == 0, health.stderr
    assert [r["id"] for r in json.loads(health.stdout)] == [2, 1]
    one = run_cli("report", "sync_health", "--param", "limit=1", "--format=json", env=env)
    assert [r["id"] for r in json.loads(one.stdout)] == [2]
    since = run_cli("report", "sync_health", "--since", "2026-02-10T13:00", "--format=json", env=env)
    assert [r["id"] for r in json.loads(since.stdout)] == [2]
    flight = run_cli("report", "in_flight", "--param", "now=2026-02-12", "--format=json", env=env)
    assert [(r["id"], r["hours_since_created"]) for r in json.loads(flight.stdout)] == [("ftjob-a1", 48)]
    cases = {
        ("sync_health", "--param", "limit=abc"): "parameter limit: 'abc' is not a whole number (0 or more)",
        ("sync_health", "--param", "limit=-1"): "parameter limit: '-1' is not a whole number (0 or more)",
        ("sync_health", "--param", f"limit={10**20}"): "parameter limit: 100000000000000000000 is too large",
        ("in_flight", "--param", "now=yesterday"): "parameter now: 'yesterday' is not a date like 2026-01-31",
        ("job_timeline",): "report job_timeline needs --param job_id=...: the job's id",
        ("job_timeline", "--param", "job_id=x", "--since", "2026-01-01"): "takes no parameter since",
    }
    for args, message in cases.items():
        result = run_cli("report", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith("archiver: error: ") and message in line, (args, line)
    listing = run_cli("report", "--format=json", env=env)
    rows = {r["report"]: r["parameters"] for r in json.loads(listing.stdout)}
    assert rows["job_timeline"] == "job_id (required)"
    assert rows["sync_health"] == "[since] [until] [limit=100] [route=*]"
    assert rows["in_flight"] == "[now] [route=*]"
    assert rows["status_overview"] == "[since] [until] [route=*]"


ODD = "a\u0000b\u2028c"  # NUL (PostgreSQL text cannot hold it) and a line separator
SAFE = "a\ufffdb\u2028c"  # what typed columns hold in its place, on both backends


def odd_job(i: str, day: float, status: str, odd: str = ODD) -> dict[str, Any]:
    """A job with `odd` in every text field the API sends (its id excepted)."""
    return job(
        i,
        day,
        status,
        odd,
        took=600 if status != odd else None,
        object=odd,
        organization_id=odd,
        training_file=odd,
        validation_file=odd,
        fine_tuned_model=odd,
        user_provided_suffix=odd,
        error={"code": odd, "message": odd, "param": odd},
        result_files=[odd, odd],
        metadata={"note": odd, odd: odd},
        hyperparameters={"n_epochs": odd, "batch_size": odd, "learning_rate_multiplier": odd},
        method={"type": odd, odd: {"hyperparameters": {"n_epochs": odd}}},
        integrations=[
            {"type": "wandb", "wandb": {"project": odd, "name": odd, "entity": odd, "tags": [odd]}},
            {"type": odd, odd: {"project": odd}},
        ],
    )


LONE = "a\ud800b\u2028c\U0001f600"  # a lone surrogate (raw holds \ud800) and a pair (an emoji)
LONE_SAFE = "a\ufffdb\u2028c\U0001f600"


@pytest.mark.parametrize(("odd", "safe"), [(ODD, SAFE), (LONE, LONE_SAFE)])
def test_every_report_and_view_reads_nul_and_lone_surrogates_as_u_fffd_on_both_backends(
    engine: sa.Engine, odd: str, safe: str
) -> None:
    """job_history_fields extracts from raw; PostgreSQL refuses any extraction from a json value
    holding \\u0000 or a lone surrogate escape anywhere, SQLite's json_extract cuts the text at
    the NUL and gives a lone surrogate as bytes that are not UTF-8 (read as U+FFFD, one per byte)."""
    served = [
        odd_job("n1", 30, odd, odd),
        odd_job("n2", 20, "running", odd),
        odd_job("n3", 10, "succeeded", odd),
    ]
    fake = FakeApi(served)
    sync(api_for(fake), engine)
    fake.jobs = [{**j, "trained_tokens": 10} for j in served]  # a second version of each: a timeline
    sync(api_for(fake), engine)
    with engine.connect() as conn:
        views = sorted(sa.inspect(conn).get_view_names())
        details = ["job_final_metrics", "job_metric_steps"]  # tests/test_detail_reports.py
        audit = ["audit_chain"]  # tests/test_audit.py
        assert views == sorted(["job_history_fields", "job_summary", "sync_run_summary", *details, *audit])
        selected = {v: [r._asdict() for r in conn.execute(sa.text(f"SELECT * FROM {v}"))] for v in views}
        ran = {}
        for name in reports.names():
            extra = {"job_timeline": {"job_id": "ftjob-n1"}, "training_curve": {"job_id": "ftjob-n1"}}
            params = {**ALL, **extra.get(name, {"model": safe} if name == "model_comparison" else {})}
            columns, rows = reports.run_report(conn, name, params)
            ran[name] = [dict(zip(columns, row, strict=True)) for row in rows]
    texts = [v for out in (selected, ran) for rows in out.values() for row in rows for v in row.values()]
    assert not [v for v in texts if isinstance(v, str) and "\x00" in v]
    summary = {r["id"]: r for r in selected["job_summary"]}
    typed = ("model", "fine_tuned_model", "method_type", "user_provided_suffix", "error_code")
    typed += ("error_message", "wandb_project", "n_epochs", "batch_size", "learning_rate_multiplier")
    for job_id in ("ftjob-n1", "ftjob-n2", "ftjob-n3"):
        assert {k: summary[job_id][k] for k in typed} == dict.fromkeys(typed, safe), job_id
    assert summary["ftjob-n1"]["status"] == safe
    history = [r for r in selected["job_history_fields"] if r["job_id"] == "ftjob-n1"]
    fields = [(r["status"], r["fine_tuned_model"], r["error_code"], r["result_file_count"]) for r in history]
    from_raw = (
        "a\ufffd\ufffd\ufffdb\u2028c\U0001f600" if odd == LONE and engine.dialect.name == "sqlite" else safe
    )
    assert fields == [(safe, from_raw, from_raw, 2)] * 2
    assert [r["trained_tokens"] for r in history] == [None, "10"]
    assert [(r["status"], r["changed"]) for r in ran["job_timeline"]] == [
        (safe, "first seen"),
        (safe, "trained_tokens"),
    ]
    assert [(r["id"], r["status"], r["model"]) for r in ran["in_flight"]] == [
        ("ftjob-n2", "running", safe),
        ("ftjob-n1", safe, safe),
    ]
    assert all(r["status_seen_since"] for r in ran["in_flight"])
    assert [(r["suffix"], r["base_model"]) for r in ran["fine_tuned_models"]] == [(safe, safe)] * 3
    assert {(r["code"], r["message"], r["model"]) for r in ran["failure_reasons"]} == {(safe, safe, safe)}
    assert {(r["project"], r["entity"], r["tag"]) for r in ran["wandb_usage"]} == {(safe, safe, safe)}
    assert {r["model"] for r in ran["durations"] + ran["hyperparameters"]} == {safe}
    assert {r["status"] for r in ran["status_overview"]} == {safe, "running", "succeeded"}
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT DISTINCT type FROM integrations ORDER BY type")).scalars()
        assert list(kinds) == sorted([safe, "wandb"])


def test_job_history_fields_keeps_the_text_backslash_u0000(engine: sa.Engine) -> None:
    """Only the \\u0000 escape is a NUL; an escaped backslash followed by u0000 is text and stays."""
    model = "\\u0000, \\\\u0000 and \x00"
    sync(api_for(FakeApi([job("b1", 10, "succeeded", took=100, fine_tuned_model=model)])), engine)
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT fine_tuned_model FROM job_history_fields")).scalar_one()
    assert got == "\\u0000, \\\\u0000 and \ufffd"


def test_report_rows_are_read_as_they_are_consumed_and_equal_the_table(archive: sa.Engine) -> None:
    from archiver import Archive
    from archiver.errors import ConfigError

    with Archive(archive_url(archive)) as library:
        with library.report_rows("status_overview", since="2026-01-01") as (columns, rows):
            assert not isinstance(rows, list)  # an iterator over the open result (issue 21)
            streamed = columns, list(rows)
        assert streamed == library.report_table("status_overview", since="2026-01-01")
        assert streamed[1] == EXPECTED["status_overview"]
        with pytest.raises(ConfigError, match="no job 'ftjob-none' in the archive"):
            library.report_table("job_timeline", job_id="ftjob-none")


def nearest_rank(values: list[int], p: int) -> int:
    """The value of rank ceil(p% of n) in order: the durations report's percentiles."""
    ordered = sorted(values)
    return ordered[-(-len(ordered) * p // 100) - 1]


@pytest.mark.parametrize("seed", [1, 2])
def test_durations_and_hyperparameters_equal_a_count_in_python_of_the_jobs_in_the_range(
    engine: sa.Engine, seed: int
) -> None:
    """Both reports read an index in their grouping order and count per distinct value (the
    durations' percentiles from running counts): ties, missing values and a time range."""
    rng = random.Random(seed)
    served = []
    for n in range(300):
        model = rng.choice(["gpt-4o-mini", "gpt-3.5-turbo", None])
        status = rng.choice(["succeeded", "failed", "cancelled", "running"])
        took = None if status == "running" else rng.choice([60, 60, 120, 300, rng.randrange(1, 5000)])
        hp = {k: rng.choice(["auto", 1, 3, None]) for k in AUTO}
        served.append(job(f"r{n:03}", rng.randrange(60), status, model, took, hyperparameters=hp))
    served.sort(key=lambda j: -j["created_at"])
    sync(api_for(FakeApi(served)), engine)
    since, until = T0 + rng.randrange(20) * DAY, T0 + rng.randrange(30, 60) * DAY
    chosen = [j for j in served if since <= j["created_at"] < until]
    took: dict[tuple[Any, ...], list[int]] = {}
    used: dict[tuple[Any, ...], int] = {}
    for j in chosen:
        if j["finished_at"]:
            took.setdefault((j["model"], j["status"]), []).append(j["finished_at"] - j["created_at"])
        hp = tuple(None if v is None else str(v) for v in j["hyperparameters"].values())
        used[(j["model"], None, *hp)] = used.get((j["model"], None, *hp), 0) + 1
    with engine.connect() as conn:
        params = {**ALL, "since": since, "until": until}
        _, durations = reports.run_report(conn, "durations", params)
        _, hyperparameters = reports.run_report(conn, "hyperparameters", params)
    expected = [
        (*key, len(s), min(s), sum(s) / len(s), max(s), nearest_rank(s, 50), nearest_rank(s, 90))
        for key, s in took.items()
    ]
    assert sorted(durations, key=repr) == sorted(expected, key=repr)
    assert sorted(hyperparameters, key=repr) == sorted([(*k, n) for k, n in used.items()], key=repr)


def test_in_flight_leaves_out_jobs_final_in_a_providers_own_words(engine: sa.Engine) -> None:
    served = [
        job("p1", 3, "Completed"),  # Bedrock
        job("p2", 2, "JOB_STATE_RUNNING"),  # Vertex AI
        job("p3", 1, "canceled"),  # Azure's spelling
        job("p4", 0, "something new"),  # a status no provider is known to send: it may still move
    ]
    sync(api_for(FakeApi(served)), engine)
    with engine.connect() as conn:
        _, rows = reports.run_report(conn, "in_flight", ALL)
    assert [(r[0], r[1]) for r in rows] == [("ftjob-p4", "something new"), ("ftjob-p2", "JOB_STATE_RUNNING")]
