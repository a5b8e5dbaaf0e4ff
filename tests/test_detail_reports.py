"""The details' reports (training_curve, final_metrics, model_comparison) and Archive.metrics."""

import base64
import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import Archive, db, reports
from archiver.detail_store import summary
from archiver.details import DetailOptions
from archiver.fake_details import add_details
from archiver.sync import sync
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for

DETAIL_REPORTS = {"training_curve", "final_metrics", "model_comparison"}
MODEL = "gpt-4o-mini-2024-07-18"
CSV = {
    "ftjob-a": "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
    "1,2.0,0.1,,\n2,1.5,0.2,1.8,0.3\n3,1.0,0.4,,\n4,0.8,0.5,1.9,0.35\n",
    "ftjob-b": "step,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,"
    "full_valid_loss,full_valid_mean_token_accuracy\n1,1.2,0.3,1.1,0.4,1.05,0.41\n2,0.9,0.5,1.0,0.45,,\n",
    "ftjob-c": "step,train_reward_mean,valid_reward_mean,train_reasoning_tokens_mean\n"
    "1,0.2,0.1,300\n2,0.5,,310\n",
}


def served() -> FakeApi:
    jobs = make_jobs(3, seed=40)
    for k, (job, job_id) in enumerate(zip(jobs, CSV, strict=True)):
        job.update(
            id=job_id,
            status="succeeded",
            model=MODEL if job_id != "ftjob-c" else "o4-mini-2025-04-16",
            created_at=1_790_000_000 - 3600 * k,
            finished_at=1_790_000_000 - 3600 * k + 600,
            estimated_finish=None,
            trained_tokens=1000 * (k + 1),
            result_files=[f"file-r{k}"],
            hyperparameters={"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 2},
        )
        job.pop("method", None)
    fake = FakeApi(jobs)
    add_details(fake, seed=40)
    for k, job_id in enumerate(CSV):
        fake.contents[f"file-r{k}"] = base64.b64encode(CSV[job_id].encode())
    return fake


@pytest.fixture
def archived(engine: sa.Engine) -> sa.Engine:
    sync(api_for(served()), engine, details=DetailOptions())
    return engine


def run(engine: sa.Engine, name: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return reports.run_report(conn, name, reports.resolve(name, params))[1]


def test_training_curve_puts_each_steps_common_metrics_side_by_side(archived: sa.Engine) -> None:
    assert run(archived, "training_curve", job_id="ftjob-a") == [
        (1, 2.0, 0.1, None, None, None, None, None, None),
        (2, 1.5, 0.2, 1.8, 0.3, None, None, None, None),
        (3, 1.0, 0.4, None, None, None, None, None, None),
        (4, 0.8, 0.5, 1.9, 0.35, None, None, None, None),
    ]
    assert run(archived, "training_curve", job_id="ftjob-b") == [
        (1, 1.2, 0.3, 1.1, 0.4, 1.05, 0.41, None, None),
        (2, 0.9, 0.5, 1.0, 0.45, None, None, None, None),
    ]
    assert run(archived, "training_curve", job_id="ftjob-c") == [
        (1, None, None, None, None, None, None, 0.2, 0.1),
        (2, None, None, None, None, None, None, 0.5, None),
    ]


def test_final_metrics_gives_final_train_loss_and_best_validation_loss_per_job(archived: sa.Engine) -> None:
    hp = ("3", "auto", "2")
    assert run(archived, "final_metrics") == [
        ("ftjob-a", "2026-09-21 14:13:20", MODEL, None, "succeeded", 1000, *hp, 4, 0.8, 1.8, 2, 1.9),
        ("ftjob-b", "2026-09-21 13:13:20", MODEL, None, "succeeded", 2000, *hp, 2, 0.9, 1.0, 2, 1.0),
        (
            "ftjob-c",
            "2026-09-21 12:13:20",
            "o4-mini-2025-04-16",
            None,
            "succeeded",
            3000,
            *hp,
            2,
            *[None] * 4,
        ),
    ]
    assert run(archived, "final_metrics", since="2026-09-21T13:00") == run(archived, "final_metrics")[:2]


def pivoted(conn: sa.Connection) -> list[tuple[Any, ...]]:
    """Each job's summary as migration 0010's job_final_metrics computed it: from every metric row."""
    path = db.resource_path("migrations") / "versions" / "0010_details.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = module.FINAL_METRICS.split(" AS\n", 1)[1]
    columns = "job_id, steps, final_step, final_train_loss, final_train_accuracy"
    columns += ", best_valid_loss, best_valid_step, final_valid_loss"
    return sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT {columns} FROM ({body}) o")))


def summaries(conn: sa.Connection) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in conn.execute(sa.text("SELECT * FROM job_metric_summary")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_job_metric_summary_is_what_pivoting_every_metric_row_gave(archived: sa.Engine, seed: int) -> None:
    """What a details write keeps, and detail_store.summary over random rows (two result files,
    ties, steps without validation, metrics it does not read), equal 0010's view of every row."""
    with archived.begin() as conn:
        assert summaries(conn) == pivoted(conn) and len(summaries(conn)) == 3
        rng = random.Random(seed)
        names = ["train_loss", "train_accuracy", "train_mean_token_accuracy", "valid_loss", "full_valid_loss"]
        held = {
            (job_id, file_id, step, metric): rng.choice([0.5, 1.0, 1.5, rng.random()])
            for job_id in ("ftjob-a", "ftjob-b")
            for file_id in ("file-1", "file-2")[: rng.randint(1, 2)]
            for step in rng.sample(range(1, 40), rng.randint(1, 20))
            for metric in rng.sample(names, rng.randint(1, len(names)))
        }
        conn.execute(sa.text("DELETE FROM job_metrics"))
        columns = ("job_id", "file_id", "step", "metric", "value")
        conn.execute(
            sa.text("INSERT INTO job_metrics VALUES (:job_id, :file_id, :step, :metric, :value)"),
            [dict(zip(columns, (*key, value), strict=True)) for key, value in held.items()],
        )
        expected = pivoted(conn)
    computed = [
        summary(job_id, [(k[2], k[3], v) for k, v in held.items() if k[0] == job_id])
        for job_id in ("ftjob-a", "ftjob-b")
    ]
    assert sorted(tuple(s.values()) for s in computed if s) == expected


def test_0015_fills_job_metric_summary_as_the_details_writes_keep_it(archived: sa.Engine) -> None:
    with archived.connect() as conn:
        written = summaries(conn)
    db.downgrade(archived, "0014")
    with archived.connect() as conn:
        assert not sa.inspect(conn).has_table("job_metric_summary")
    db.upgrade(archived)
    with archived.connect() as conn:
        assert summaries(conn) == written and len(written) == 3


def test_model_comparison_ranks_the_runs_of_one_base_model_by_best_validation_loss(
    archived: sa.Engine,
) -> None:
    hp = ("3", "auto", "2")
    rows = run(archived, "model_comparison", model=MODEL)
    assert [r[:-1] for r in rows] == [
        ("ftjob-b", "2026-09-21 13:13:20", None, *hp, 2000, 2, 0.9, 1.0, 2, 1.0),
        ("ftjob-a", "2026-09-21 14:13:20", None, *hp, 1000, 4, 0.8, 1.8, 2, 1.9),
    ]
    assert [r[-1] for r in rows] == [0.0, pytest.approx(-0.1)]


def test_archive_metrics_and_report_give_every_column_of_a_jobs_result_file(
    archived: sa.Engine, db_url: str
) -> None:
    with Archive(db_url) as archive:
        assert archive.metrics("ftjob-c") == [
            {
                "step": 1,
                "train_reasoning_tokens_mean": 300.0,
                "train_reward_mean": 0.2,
                "valid_reward_mean": 0.1,
            },
            {"step": 2, "train_reasoning_tokens_mean": 310.0, "train_reward_mean": 0.5},
        ]
        assert archive.metrics("ftjob-none") == []
        curve = archive.report("training_curve", job_id="ftjob-a")
    assert [(r["step"], r["train_loss"], r["valid_loss"]) for r in curve] == [
        (1, 2.0, None),
        (2, 1.5, 1.8),
        (3, 1.0, None),
        (4, 0.8, 1.9),
    ]


def test_the_detail_reports_are_among_the_reports(tmp_path: Path) -> None:
    assert set(reports.names()) >= DETAIL_REPORTS
    assert [p.name for p in reports.parameters("training_curve")] == ["job_id"]
    assert [p.name for p in reports.parameters("model_comparison")] == ["model"]
