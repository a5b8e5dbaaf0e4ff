"""Metrics at scale: an archive of N final jobs whose result files hold S steps each, written by
archiver's own detail store, then the two metric reports timed on it.

    python benchmarks/metrics_scale.py --db ARCHIVE --jobs 10000 --steps 1000

Going through the fake over HTTP would take hours (5.6 requests a job, see details_backfill.py),
and what is measured here is the database: so the jobs are written with store.upsert_page and each
job's details with detail_store.save_job (the same functions and the same transaction per job as
`archiver sync`: the result file's bytes kept, parsed, its metrics inserted, a link of the audit
chain appended), from result files made by archiver/fake_details.py (OpenAI's and Azure's columns,
validation every fifth step; 1 or 2 result files a succeeded job). Prints the write rate (metric
rows a second, jobs a second), the archive's size, and each report's wall, CPU and peak RSS in a
fresh `archiver report` process (training_curve for the newest job, final_metrics with its defaults).
"""

import argparse
import base64
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from archiver import db, ledger, normalize, store  # noqa: E402
from archiver.detail_api import Content  # noqa: E402
from archiver.detail_store import Fetched, save_job  # noqa: E402
from archiver.fake_details import COLUMNS, csv_text, file_meta, result_rows  # noqa: E402
from archiver.generate import make_job  # noqa: E402
from benchmarks.run import measure  # noqa: E402

NOW = 1_790_000_000
MAX_BYTES = 10**9


def write_jobs(engine: sa.Engine, n: int, run_id: int) -> list[dict[str, object]]:
    rng = random.Random(1)
    made = [make_job(i, rng, NOW, status="succeeded") for i in range(n)]
    notes = normalize.Notes()
    for start in range(0, n, 500):
        page = [(j, normalize.job(j, notes, "openai")) for j in made[start : start + 500]]
        with engine.begin() as conn:
            store.upsert_page(conn, page, run_id, time.time())
    return made


def fetched(job: dict, steps: int, rng: random.Random) -> tuple[Fetched, int]:
    """The job's details as fetched: no events or checkpoints, its result files; and its metric rows."""
    kind = rng.choice(["openai", "azure"])
    f = Fetched(str(job["id"]), events=[], checkpoints=[])
    rows = 0
    for file_id in job["result_files"]:  # type: ignore[attr-defined]
        text = csv_text(COLUMNS[kind], result_rows(rng, COLUMNS[kind], steps))
        body = base64.b64encode(text.encode())
        f.files[file_id] = file_meta(file_id, "fine-tune-results", "step_metrics.csv", NOW, len(body))
        f.contents[file_id] = Content(body, len(body), "application/octet-stream")
        rows += sum(1 for line in text.splitlines()[1:] for cell in line.split(",")[1:] if cell)
    return f, rows


def size(engine: sa.Engine, url: str) -> float:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one() / 1e6
    return sum(p.stat().st_size for p in Path(url).parent.glob(Path(url).name + "*")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="a fresh archive: SQLite path or PostgreSQL URL")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000)
    args = parser.parse_args()
    engine = db.make_engine(db.parse_url(args.db))
    db.upgrade(engine)
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, "full", "http://bench/v1", time.time())
    made = write_jobs(engine, args.jobs, run_id)
    rng, rows, start, cpu = random.Random(2), 0, time.perf_counter(), time.process_time()
    for k, job in enumerate(made):
        f, count = fetched(job, args.steps, rng)
        with engine.begin() as conn:
            save_job(conn, f, run_id, 0, MAX_BYTES, time.time())
        rows += count
        if (k + 1) % 1000 == 0:
            took = time.perf_counter() - start
            print(
                f"{k + 1:,} jobs, {rows:,} metric rows, {took:.0f} s, {rows / took:,.0f} rows/s", flush=True
            )
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    with engine.begin() as conn:
        ledger.end_run(conn, run_id, status="succeeded", finished_at=time.time())
    print(
        f"backfill: {args.jobs:,} jobs, {rows:,} metric rows in {took:.1f} s wall ({cpu:.1f} s CPU): "
        f"{rows / took:,.0f} rows/s, {args.jobs / took:.1f} jobs/s; archive {size(engine, args.db):,.0f} MB"
    )
    engine.dispose()
    cli = [sys.executable, "-m", "archiver", "report"]
    for label, argv in (
        ("training_curve", [*cli, "training_curve", "--param", f"job_id={made[0]['id']}"]),
        ("final_metrics", [*cli, "final_metrics"]),
    ):
        r = measure([*argv, "--format", "csv", "--db", args.db], dict(os.environ))
        print(f"| report {label} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
