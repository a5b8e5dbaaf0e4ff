"""archiver against the floor and two peer loaders, side by side, each sync in a fresh process.

    python benchmarks/run.py --jobs 20000 100000 --runs 3 [--postgres URL] [--latency]
    python benchmarks/run.py --smoke          # CI: small and quick, checks only that it all runs

Serves the fake API (pre-rendered pages) on 127.0.0.1 from this process, and for each N measures
wall time, CPU time (user + system) and peak RSS of the child process:
  floor first      benchmarks/floor.py into a fresh SQLite archive
  archiver first   `archiver sync` into a fresh SQLite archive
  sqlite-utils first  benchmarks/sqlite_utils_loader.py into a fresh SQLite file (bench extra)
  dlt first        benchmarks/dlt_loader.py, a dlt rest_api pipeline, into a fresh SQLite file (bench extra)
  floor resync     the floor again over its own archive (it rewrites everything)
  archiver resync  `archiver sync --full` over its archive (an unchanged history)
  archiver noop    `archiver sync` (incremental) over its archive
  archiver version `archiver --version`: the interpreter and the command line, no work
  archiver pg      `archiver sync` into a fresh PostgreSQL database (with --postgres)
Contenders take turns going first across rounds; medians over the rounds are reported. The two
peers need `pip install -e '.[bench]'`; without it they are skipped with a note. Every archive is
checked to hold exactly the jobs the fake served.
With --latency, every page costs 100 ms more and one full sync of 20,000 jobs is timed, beside
benchmarks/walk_only.py (the same walk with nothing stored: what the fake and httpx cost alone);
then `sync --full` over an archive of 100,000 jobs, --parallel 1 against --parallel 4.
"""

import argparse
import importlib.util
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.history import ScaledApi  # noqa: E402
from tests.fake_api import AUTH_HEADERS, serve  # noqa: E402

LIMIT = 100
PEERS = {  # contender: (the package it needs, its script)
    "sqlite-utils first": ("sqlite_utils", "benchmarks/sqlite_utils_loader.py"),
    "dlt first": ("dlt", "benchmarks/dlt_loader.py"),
}


def measure(argv: list[str], env: dict[str, str], allow: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Wall and CPU time of one child, and its peak RSS read from /proc (VmHWM) while it runs:
    the kernel's ru_maxrss would also count this process's pages, inherited at fork/exec."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status_file, peak_kb = Path(f"/proc/{proc.pid}/status"), 0
    while True:
        try:
            hwm = [line for line in status_file.read_text().splitlines() if line.startswith("VmHWM:")]
            peak_kb = max(peak_kb, int(hwm[0].split()[1])) if hwm else peak_kb
        except (OSError, IndexError, ValueError):
            pass
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in allow:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {err}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": peak_kb / 1024}


def archiver(*args: str) -> list[str]:
    # the job list's cost against its peers; a job's details are timed by details_backfill.py
    return [sys.executable, "-m", "archiver", "sync", f"--page-size={LIMIT}", "--no-details", *args]


def fresh_sqlite(tmp: Path) -> str:
    path = tmp / f"{uuid.uuid4().hex}.db"
    subprocess.run(
        [sys.executable, "-m", "archiver", "db", "upgrade", "--db", str(path)],
        check=True,
        capture_output=True,
    )
    return str(path)


def installed_peers() -> list[str]:
    """The peers whose package is importable here; one line of note naming those that are not."""
    missing = [name for name, (package, _) in PEERS.items() if importlib.util.find_spec(package) is None]
    if missing:
        print(f"note: skipping {', '.join(missing)}: bench extra not installed (pip install -e '.[bench]')")
    return [name for name in PEERS if name not in missing]


def bench(
    n: int, runs: int, pg_admin: str | None, tmp: Path, peers: list[str], keep: Path | None = None
) -> dict[str, list[dict[str, float]]]:
    api = ScaledApi(n, n, tmp, LIMIT)
    results: dict[str, list[dict[str, float]]] = {}
    admin = (
        sa.create_engine(
            pg_admin.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        if pg_admin
        else None
    )
    with serve(api) as base_url:
        env = {
            **os.environ,
            "PORTKEY_BASE_URL": base_url,
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
            "ARCHIVER_PAGE_SIZE": str(LIMIT),
        }
        for round_ in range(runs):
            floor_db, ours_db = fresh_sqlite(tmp), str(tmp / f"{uuid.uuid4().hex}.db")
            peer_dbs = {name: str(tmp / f"{uuid.uuid4().hex}.db") for name in peers}
            first = [
                ("floor first", [sys.executable, str(ROOT / "benchmarks/floor.py"), base_url, floor_db]),
                ("archiver first", archiver("--db", ours_db)),
                *(
                    (name, [sys.executable, str(ROOT / PEERS[name][1]), base_url, peer_dbs[name]])
                    for name in peers
                ),
            ]
            again = [
                ("floor resync", [sys.executable, str(ROOT / "benchmarks/floor.py"), base_url, floor_db]),
                ("archiver resync", archiver("--db", ours_db, "--full")),
            ]
            first = first[round_ % len(first) :] + first[: round_ % len(first)]  # rotate who goes first
            if round_ % 2:
                again.reverse()
            version = [sys.executable, "-m", "archiver", "--version"]
            quick = [("archiver noop", archiver("--db", ours_db)), ("archiver version", version)]
            if round_ % 2:
                quick.reverse()
            for name, argv in [*first, *again, *quick]:
                results.setdefault(name, []).append(measure(argv, env))
            check(ours_db, n)
            check(floor_db, n, "the floor")
            for name, path in peer_dbs.items():
                check(path, n, name)
            if admin is not None:
                keep_pg = keep is not None and round_ == runs - 1
                for name, result in pg_round(admin, env, pg_name(keep, n) if keep_pg else None).items():
                    results.setdefault(name, []).append(result)
            if keep is not None and round_ == runs - 1:
                os.replace(ours_db, keep / f"archive-{n}.db")
            for path in tmp.glob("*.db*"):
                path.unlink()
    api.close()
    return results


def pg_name(keep: Path | None, n: int) -> str:
    """The kept PostgreSQL archive: named after the --keep directory, so that two runs keeping
    theirs do not drop each other's."""
    stem = "".join(c if c.isalnum() else "_" for c in keep.name.lower()) if keep else "archive"
    return f"{stem}_{n}"


def pg_round(admin: sa.Engine, env: dict[str, str], keep: str | None) -> dict[str, dict[str, float]]:
    """A first sync into a fresh PostgreSQL database, then `sync --full` over it; the database is
    dropped, unless `keep` names it (an archive kept there before is replaced)."""
    name = keep or f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        first = measure(archiver("--db", url), env)
        return {"archiver pg": first, "archiver pg resync": measure(archiver("--db", url, "--full"), env)}
    finally:
        if keep is None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


def check(path: str, n: int, who: str = "archiver") -> None:
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    if count != n:
        raise SystemExit(f"{who} archived {count} jobs, not {n}")


def latency(tmp: Path, n: int = 20_000, delay: float = 0.1) -> None:
    api = ScaledApi(n, 7, tmp, LIMIT)
    api.delay = delay
    with serve(api) as base_url:
        env = {
            **os.environ,
            "PORTKEY_BASE_URL": base_url,
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
        }
        result = measure(archiver("--db", str(tmp / "latency.db")), env)
        walk = measure([sys.executable, str(ROOT / "benchmarks/walk_only.py"), base_url], env)
    pages = -(-n // LIMIT)
    print(
        f"\nlatency: {n:,} jobs, {pages} pages at +{delay * 1000:.0f} ms: {result['wall']:.2f}s wall "
        f"= {result['wall'] / (pages * delay):.3f} x (pages x delay); target <= 1.04; "
        f"cpu {result['cpu']:.2f}s, peak RSS {result['rss_mb']:.0f} MB\n"
        f"  the walk alone (benchmarks/walk_only.py: httpx GET and parse, nothing stored): "
        f"{walk['wall']:.2f}s = {walk['wall'] / (pages * delay):.3f} x"
    )


def parallel_full(tmp: Path, n: int = 100_000, delay: float = 0.1) -> None:
    """`sync --full` over an archive that knows the history, at +100 ms per page: one walk
    (--parallel 1) against the default four segments, each from a copy of the same archive."""
    api = ScaledApi(n, 11, tmp, LIMIT)
    with serve(api) as base_url:
        env = {
            **os.environ,
            "PORTKEY_BASE_URL": base_url,
            "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
            "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
        }
        known = tmp / "known.db"
        measure(archiver("--db", str(known)), env)
        api.delay = delay
        result = {}
        for parallel in (1, 4):
            copy = tmp / f"parallel-{parallel}.db"
            with sqlite3.connect(known) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)
            result[parallel] = measure(archiver("--db", str(copy), "--full", f"--parallel={parallel}"), env)
            check(str(copy), n)
    one, four = result[1], result[4]
    print(
        f"\nparallel full walk: {n:,} archived jobs, {-(-n // LIMIT)} pages at +{delay * 1000:.0f} ms: "
        f"--parallel 1 {one['wall']:.2f}s, --parallel 4 {four['wall']:.2f}s wall = "
        f"{four['wall'] / one['wall']:.3f} x; target <= 0.3; cpu {one['cpu']:.2f}s / {four['cpu']:.2f}s, "
        f"peak RSS {one['rss_mb']:.0f} / {four['rss_mb']:.0f} MB"
    )


def summarize(n: int, results: dict[str, list[dict[str, float]]]) -> None:
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    print(f"\nN = {n:,} jobs, {len(next(iter(results.values())))} rounds, medians")
    print("| contender | wall s | cpu s | peak RSS MB |\n|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v['wall']:.2f} | {v['cpu']:.2f} | {v['rss_mb']:.0f} |")
    ratios = [
        ("first sync / floor first (<= 1.3)", "archiver first", "floor first"),
        ("first sync / sqlite-utils first (<= 0.75)", "archiver first", "sqlite-utils first"),
        ("first sync / dlt first (<= 0.45)", "archiver first", "dlt first"),
        ("re-sync / floor re-sync (<= 1.0)", "archiver resync", "floor resync"),
        ("PostgreSQL first / SQLite first (<= 1.4)", "archiver pg", "archiver first"),
        ("no-op incremental / --version (<= 1.25)", "archiver noop", "archiver version"),
    ]
    for label, a, b in ratios:
        if a in med and b in med:
            wall, cpu, rss = (med[a][m] / med[b][m] for m in ("wall", "cpu", "rss_mb"))
            print(f"- {label}: wall {wall:.2f}, cpu {cpu:.2f}, peak RSS {rss:.2f}")
    peak = max(v["rss_mb"] for k, v in med.items() if k.startswith("archiver"))
    print(f"- archiver's peak RSS: {peak:.0f} MB (<= 80, flat from 100,000 on: issue 21)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server for scratch databases")
    parser.add_argument("--latency", action="store_true", help="also time a full sync at +100 ms per page")
    parser.add_argument(
        "--peers-up-to", type=int, default=20_000, help="run the peer loaders only for N up to this"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny and quick, for CI")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the last round's archives: DIR/archive-N.db, and the PostgreSQL database <DIR name>_N",
    )
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.runs = [500], 1
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.platform()}"
    )
    peers = installed_peers()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.jobs:
            chosen = peers if n <= args.peers_up_to else []
            summarize(n, bench(n, args.runs, args.postgres, Path(tmp), chosen, args.keep))
        if args.latency:
            latency(Path(tmp), 2_000 if args.smoke else 20_000)
            parallel_full(Path(tmp), 2_000 if args.smoke else 100_000)


if __name__ == "__main__":
    main()
