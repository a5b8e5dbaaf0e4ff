"""Wall time and peak memory of dashboard.render() on a large archive, in a fresh process.

    python benchmarks/dashboard.py [--jobs 100000] [--db archive.db] [--out dashboard.html]

Fills the archive first when it holds no job (sync() from the fake through httpx.MockTransport:
about a minute and a half for 100,000 jobs), then renders it in a child process, which prints
its wall time, peak resident memory and the page's size.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from archiver import dashboard, db


def fill(url: str, n: int) -> None:
    from archiver.sync import sync
    from tests.fake_api import FakeApi, make_jobs
    from tests.test_sync import api_for

    engine = db.make_engine(db.parse_url(url))
    db.upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one():
            return
    start = time.perf_counter()
    result = sync(api_for(FakeApi(make_jobs(n, seed=5))), engine, limit=100, provider="openai")
    print(f"filled {result.inserted:,} jobs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    engine.dispose()


def render(url: str, out: str) -> None:
    engine = db.make_engine(db.parse_url(url))
    start = time.perf_counter()
    with engine.connect() as conn:
        page = dashboard.render(conn)
    wall = time.perf_counter() - start
    Path(out).write_text(page)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render {wall:.2f} s, peak RSS {peak:.0f} MB, {len(page.encode()) / 1e6:.1f} MB written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "dashboard-bench.db"))
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "dashboard-bench.html"))
    parser.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_only:
        render(args.db, args.out)
        return
    fill(args.db, args.jobs)
    child = [sys.executable, __file__, "--render-only", "--db", args.db, "--out", args.out]
    subprocess.run(child, check=True)


if __name__ == "__main__":
    main()
