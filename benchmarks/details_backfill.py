"""The first sync of a history of final jobs with their details, every request made 100 ms slower.

    python benchmarks/details_backfill.py [--jobs 20000] [--delay 0.1] [--concurrency N] [--postgres URL]

One `archiver sync --json` in a fresh process against the fake served on 127.0.0.1, each of whose
answers (list pages and details alike) waits `--delay` seconds first. Prints the requests (from the
fake's log), the requests per job, the wall time, and its ratio to the ideal:
requests x delay / concurrency (every request waited out, `concurrency` of them at once).
Then a second sync, which should send one request.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.details import CONCURRENCY
from archiver.fake_details import add_details
from tests.fake_api import AUTH_HEADERS, FakeApi, finish_job, make_jobs, serve


def sync(env: dict[str, str], *args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "sync", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"sync failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--postgres", help="a PostgreSQL URL (a database it may fill) instead of SQLite")
    args = parser.parse_args()

    jobs = make_jobs(args.jobs, seed=1)
    for job in jobs[:5]:
        finish_job(job)  # every job final
    fake = FakeApi(jobs)
    add_details(fake, seed=1)
    fake.delay = fake.detail_delay = args.delay
    with tempfile.TemporaryDirectory() as tmp, serve(fake) as base_url:
        env = {
            **os.environ,
            "PORTKEY_BASE_URL": base_url,
            "ARCHIVER_DATABASE_URL": args.postgres or str(Path(tmp) / "archive.db"),
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
        }
        summary, seconds = sync(env, f"--details-concurrency={args.concurrency}")
        requests = len(fake.requests)
        pages = len(fake.list_requests())
        ideal = requests * args.delay / args.concurrency
        print(f"jobs {args.jobs:,}, delay {args.delay * 1000:.0f} ms, concurrency {args.concurrency}")
        print(f"first sync: {summary['details']}")
        print(f"requests {requests:,} ({pages:,} list pages, {(requests - pages) / args.jobs:.2f} per job)")
        print(f"wall {seconds:.1f} s; ideal {ideal:.1f} s; ratio {seconds / ideal:.3f}")
        before = len(fake.requests)
        _, again = sync(env)
        print(f"second sync: {len(fake.requests) - before} request(s), {again:.2f} s")


if __name__ == "__main__":
    main()
