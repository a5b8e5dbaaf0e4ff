"""Requests and wall time of incremental syncs on a 2,500-job archive, each in a fresh `archiver` process.

    python benchmarks/incremental_cost.py [--postgres URL]

Prints one line per run: backend, scenario, requests (from the fake's log), wall seconds.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from tests.fake_api import AUTH_HEADERS, FakeApi, add_new_jobs, finish_job, make_jobs, serve


def run(env: dict[str, str], *args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "archiver", "sync", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out), time.perf_counter() - start


def scenario(db_url: str, label: str) -> None:
    rng = random.Random(1)
    jobs = make_jobs(2500, seed=1)
    for job in jobs[:5]:
        finish_job(job)  # nothing in flight
    fake = FakeApi(jobs)
    with serve(fake) as base_url:
        env = {
            **os.environ,
            "PORTKEY_BASE_URL": base_url,
            "ARCHIVER_DATABASE_URL": db_url,
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
            "ARCHIVER_DETAILS": "0",  # the job list's cost, as in earlier rounds: details_backfill.py
        }
        for name, prepare in [
            ("first sync, 2,500 jobs", lambda: None),
            ("no-op incremental", lambda: None),
            ("37 new jobs, incremental", lambda: add_new_jobs(fake.jobs, 37, rng)),
        ]:
            prepare()
            before = len(fake.requests)
            summary, seconds = run(env)
            print(
                f"{label:10} {name:28} requests={len(fake.requests) - before:3} "
                f"(run says {summary['requests']})"
                f"  new={summary['jobs_inserted']:5}  wall={seconds:.2f}s"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server to create a scratch database on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario(str(Path(tmp) / "archive.db"), "sqlite")
    if args.postgres:
        admin = sa.create_engine(
            args.postgres.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            scenario(admin.url.set(database=name).render_as_string(hide_password=False), "postgresql")
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
