"""What reading a large archive costs: each command in a fresh process, wall, CPU and peak RSS.

    python benchmarks/reads.py --db ARCHIVE [--db ANOTHER ...] [--skip-dashboard] [--explain]

For each archive (a SQLite path or a PostgreSQL URL, e.g. those `run.py --keep DIR` leaves):
`archiver status`, `archiver report NAME` for every report with its defaults (job_timeline for
the newest job), `archiver dashboard`, and `archiver query "SELECT * FROM jobs" --format csv`
to /dev/null. Targets (issue 21): status and reports <= 2 s, dashboard <= 15 s and 200 MB, the
CSV export <= 100 MB. With --explain, prints each report's plan (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN ANALYZE on PostgreSQL) instead.
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from archiver import db, reports  # noqa: E402
from benchmarks.run import measure  # noqa: E402


def newest_job(url: str) -> str:
    engine = db.make_engine(db.parse_url(url))
    with engine.connect() as conn:
        job = conn.execute(sa.text("SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1")).scalar_one()
    engine.dispose()
    return str(job)


MODEL = "gpt-4o-mini-2024-07-18"  # a base model of the generated histories


def required(name: str, job_id: str) -> dict[str, str]:
    """Values for the report's required parameters: the newest job, a base model."""
    known = {"job_id": job_id, "model": MODEL}
    return {p.name: known[p.name] for p in reports.parameters(name) if p.required}


def commands(url: str, skip_dashboard: bool, only: list[str]) -> list[tuple[str, list[str]]]:
    cli = [sys.executable, "-m", "archiver"]
    listed = [] if only else [("status", [*cli, "status", "--db", url])]
    job_id = newest_job(url)
    for name in reports.names():
        if only and name not in only:
            continue
        extra = [f"{k}={v}" for k, v in required(name, job_id).items()]
        extra = [arg for value in extra for arg in ("--param", value)]
        listed.append((f"report {name}", [*cli, "report", name, *extra, "--format", "csv", "--db", url]))
    if not (skip_dashboard or only):
        listed.append(("dashboard", [*cli, "dashboard", "--db", url, "-o", os.devnull]))
    if not only:
        query = [*cli, "query", "SELECT * FROM jobs", "--format", "csv", "--db", url]
        listed.append(("query --format csv (all jobs)", query))
    return listed


def explain(url: str) -> None:
    engine = db.make_engine(db.parse_url(url))
    postgres = engine.dialect.name == "postgresql"
    job_id = newest_job(url)
    with engine.connect() as conn:
        for name in reports.names():
            sql = reports.load(name)
            values = {p.name: reports.convert(p, p.default) for p in reports.parameters(name) if p.default}
            values = {k: v for k, v in {**values, **required(name, job_id)}.items() if f":{k}" in sql}
            prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " if postgres else "EXPLAIN QUERY PLAN "
            print(f"\n### {name}\n")
            for row in conn.execute(sa.text(prefix + sql), values):
                print("    " + " | ".join(str(v) for v in row))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", action="append", required=True)
    parser.add_argument("--skip-dashboard", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--only", nargs="*", default=[], help="these reports only")
    args = parser.parse_args()
    if args.explain:
        for url in args.db:
            explain(url)
        return
    env = {**os.environ, "NO_COLOR": "1"}
    for url in args.db:
        print(f"\n{db.show_url(db.parse_url(url))}\n")
        print("| command | wall s | cpu s | peak RSS MB |\n|---|---|---|---|")
        for label, argv in commands(url, args.skip_dashboard, args.only):
            r = measure(argv, env, allow=(0, 1))  # status: 1 when stale
            print(f"| {label} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
