"""Faults end to end: flaky networks, bad payloads, hostile strings, on SQLite and PostgreSQL."""

import logging
import random

import pytest
import sqlalchemy as sa

from archiver import db, normalize
from archiver.models import integrations as integrations_table
from archiver.models import job_history, rejected_items, sync_runs
from archiver.models import jobs as jobs_table
from archiver.sync import sync
from tests.conftest import HISTORY_JSON, assert_archive_equals, cli_env, count_rows, run_cli
from tests.fake_api import FakeApi, Reply, make_jobs, serve
from tests.test_sync import api_for


def test_sync_under_25_percent_faults_of_five_kinds_is_exact(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(1200, seed=40)
    fake.fault_rate, fake.fault_kinds = 0.25, ("503", "429", "drop", "truncate", "502")
    fake.rng = random.Random(40)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, ARCHIVER_DETAILS="0")  # the list's requests only
    result = run_cli("sync", "--page-size=20", "--retry-backoff=0.01", env=env)
    assert result.returncode == 0, result.stderr
    assert set(fake.injected) == set(fake.fault_kinds)
    assert len(fake.injected) >= 15
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)
    with engine.connect() as conn:
        run = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.pages, sync_runs.c.requests)).one()
    assert tuple(run) == ("succeeded", 60, 60 + len(fake.injected))
    engine.dispose()


def test_a_response_slower_than_the_timeout_is_retried(tmp_path, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(30)
    fake.slow_seconds = 1.5
    fake.faults.append(Reply(200, b"{}", action="slow"))
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    result = run_cli("sync", "--timeout=0.3", "--retry-backoff=0.01", env=env)
    assert result.returncode == 0, result.stderr
    assert "timed out; retrying" in result.stderr


def test_a_redirect_to_another_origin_carries_no_credentials(tmp_path, fake: FakeApi, base_url: str) -> None:
    elsewhere = FakeApi(make_jobs(5))
    with serve(elsewhere) as other:
        fake.faults.append(Reply(307, b"", {"location": other + "/fine_tuning/jobs?limit=100"}))
        result = run_cli("sync", env=cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db")))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "HTTP 307: redirects are not followed (they would carry the keys elsewhere)"
    )
    assert elsewhere.requests == []


def test_items_that_are_not_jobs_are_quarantined_and_the_rest_archived(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    good = make_jobs(45, seed=41)
    bad = ["ftjob-just-a-string", {"object": "fine_tuning.job", "status": "running"}, {"id": 7}, None]
    fake.jobs = [*good[:10], bad[0], *good[10:20], bad[1], *good[20:30], bad[2], *good[30:], bad[3]]
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url)
    result = run_cli("sync", "--page-size=20", env=env)
    assert result.returncode == 3, result.stderr
    assert "(45 new, 0 changed, 0 unchanged, 4 rejected)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "archiver: error: 4 list items were not jobs; they are kept in rejected_items"
    )
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, good)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                rejected_items.c.sync_run_id,
                rejected_items.c.page_after,
                rejected_items.c.position,
                rejected_items.c.reason,
                rejected_items.c.raw,
            ).order_by(rejected_items.c.id)
        ).all()
        counts = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.jobs_rejected)).one()
    assert [tuple(r) for r in rows] == [
        (1, None, 10, "not a JSON object but str", bad[0]),
        (1, fake.jobs[19]["id"], 1, "no id", bad[1]),
        (1, fake.jobs[19]["id"], 12, "id is not a non-empty string", bad[2]),
        (1, fake.jobs[39]["id"], 8, "not a JSON object but NoneType", None),
    ]
    assert tuple(counts) == ("succeeded", 4)
    engine.dispose()


def test_wrongly_typed_fields_keep_the_job_with_null_columns(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = make_jobs(6, seed=42)
    odd = jobs[2]
    odd.update(
        created_at="yesterday",
        result_files="file-notalist",
        seed=2**70,
        trained_tokens=True,
        status="paused",
        integrations=[{"type": "comet", "comet": {"project": "p"}}, "x"],
        model=["gpt"],
        brand_new_field={"nested": [1, 2, 3]},
    )
    fake = FakeApi(jobs)
    sync(api_for(fake), engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == odd["id"])).one()._mapping
        i = integrations_table.c
        query = sa.select(i.position, i.type, i.settings).where(i.job_id == odd["id"]).order_by(i.position)
        integrations = conn.execute(query).all()
    assert (row["created_at"], row["seed"], row["trained_tokens"], row["model"], row["status"]) == (
        None,
        None,
        None,
        None,
        "paused",
    )
    assert row["raw"] == odd
    assert count_rows(engine, "result_files") == sum(len(j["result_files"]) for j in jobs if j is not odd)
    assert [tuple(r) for r in integrations] == [
        (0, "comet", {"type": "comet", "comet": {"project": "p"}}),
        (1, None, "x"),
    ]
    warned = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    for field in (
        "created_at is text that is not a time; column left NULL",
        "result_files is str, not a list; ignored",
        "seed is beyond 64 bits; column left NULL",
        "trained_tokens is bool, not an integer; column left NULL",
        "model is a list, not text; column left NULL",
    ):
        assert f"1 job: {field} (raw keeps it) (e.g. job {odd['id']})" in warned, field
    assert (
        "1 job: integrations[] is str, not an object; kept as its settings (e.g. job " + odd["id"] + ")"
        in warned
    )


HOSTILE = [
    "'; DROP TABLE jobs;--",
    'say "hi"',
    "tab\there",
    "new\nline\r\n",
    "emoji 🚀🧪",
    "中文 日本語",
    "U+2028 \u2028 here",
    "nul \u0000 byte",
    "lone \ud800 surrogate",
    "\\u0000 as text",
    "",
]


def test_hostile_strings_big_metadata_and_huge_ints_round_trip(engine: sa.Engine) -> None:
    jobs = make_jobs(len(HOSTILE) + 1, seed=43)
    for job, text in zip(jobs, HOSTILE, strict=False):
        job["user_provided_suffix"] = text
        job["metadata"] = {text: text, "n": 2**64 + 1}
        job["error"] = {"code": text, "message": text, "param": None}
        job["integrations"] = [{"type": "wandb", "wandb": {"project": text, "tags": [text]}}]
    jobs[-1]["metadata"] = {f"k{i}": "x" * 512 for i in range(2048)}  # 1 MiB
    jobs[-1]["trained_tokens"] = 2**63  # one past BIGINT
    fake = FakeApi(jobs)
    sync(api_for(fake), engine)
    assert_archive_equals(engine, jobs)  # raw exact; typed text columns by the U+FFFD policy
    with engine.connect() as conn:
        suffixes = conn.execute(sa.select(jobs_table.c.user_provided_suffix)).scalars().all()
    assert "nul \ufffd byte" in suffixes and "'; DROP TABLE jobs;--" in suffixes


def test_json_columns_keep_the_text_archiver_wrote_byte_for_byte(engine: sa.Engine) -> None:
    """raw, metadata and settings hold db.to_json's text as it was bound, on both backends (the
    comparison above parses it back, which would hide a change of spacing or escapes)."""
    jobs = make_jobs(len(HOSTILE), seed=44)
    for job, text in zip(jobs, HOSTILE, strict=True):
        job["metadata"] = {text: [text, 2**64 + 1, 0.1, -0.0, 1e21]}
        job["integrations"] = [{"type": "wandb", "wandb": {"project": text, "tags": [text]}}]
    sync(api_for(FakeApi(jobs)), engine)
    notes = normalize.Notes()
    expected = {}
    for job in jobs:
        canon = normalize.job(job, notes, "unknown")
        settings = [db.to_json(i["settings"]) for i in canon["integrations"]]
        expected[job["id"]] = (db.to_json(job), db.to_json(canon["metadata"]), db.to_json(job), settings)
    as_text = sa.cast(jobs_table.c.raw, sa.Text), sa.cast(jobs_table.c.metadata, sa.Text)
    history_raw = HISTORY_JSON
    with engine.connect() as conn:
        stored = {
            job_id: (raw, metadata, history, [])
            for job_id, raw, metadata, history in conn.execute(
                sa.select(jobs_table.c.id, *as_text, history_raw).join(job_history)
            )
        }
        query = sa.select(integrations_table.c.job_id, sa.cast(integrations_table.c.settings, sa.Text))
        for job_id, settings in conn.execute(query.order_by(integrations_table.c.position)):
            stored[job_id][3].append(settings)
    assert stored == expected
