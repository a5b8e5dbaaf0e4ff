"""What the audit chain costs (issue 18), side by side with the code before it.

    python benchmarks/audit_cost.py --jobs 20000 --runs 5 --baseline 8d24b2e \\
        --verify-jobs 1000000 [--postgres URL]

1. A first sync of `--jobs` jobs (no details) into a fresh SQLite archive, by this checkout and by
   the `--baseline` commit (checked out in a temporary git worktree, run with this venv, with
   `--baseline-patch` applied if given), taking turns going first; medians of `--runs`, and the
   ratio. `--baseline HEAD --baseline-patch benchmarks/no_chain.patch` measures the chain alone:
   the same code with no link written and no digest taken.
2. `archiver verify` of an archive holding `--verify-jobs` jobs (one history row each, plus their
   runs): the archive is made by one `archiver sync`, then verify runs in a fresh process (wall,
   CPU, peak RSS), on SQLite and, with --postgres, on a fresh PostgreSQL database.
Every child is one fresh process; times are wall seconds; see benchmarks/run.py's `measure`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.history import ScaledApi  # noqa: E402
from benchmarks.run import LIMIT, measure  # noqa: E402
from tests.fake_api import AUTH_HEADERS, serve  # noqa: E402


def sync_argv(db: str) -> list[str]:
    return [sys.executable, "-m", "archiver", "sync", f"--page-size={LIMIT}", "--no-details", "--db", db]


def side_by_side(
    n: int, runs: int, baseline: str, tmp: Path, env: dict[str, str], patch: str | None = None
) -> None:
    base = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), baseline], check=True
    )
    if patch:
        subprocess.run(["git", "-C", str(base), "apply", str(Path(patch).resolve())], check=True)
    try:
        trees = {"this checkout": ROOT, f"baseline {baseline}" + (f" + {patch}" if patch else ""): base}
        for tree in trees.values():  # each child imports the archiver of its own tree
            probe = [sys.executable, "-c", "import archiver; print(archiver.__file__)"]
            where = subprocess.run(probe, cwd=tree, env=env | {"PYTHONPATH": str(tree)}, capture_output=True)
            assert where.stdout.decode().startswith(str(tree)), where
        times: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_ in range(runs):
            order = list(trees.items())[:: 1 if round_ % 2 == 0 else -1]
            for name, tree in order:
                db = str(tmp / f"{uuid.uuid4().hex}.db")
                child_env = env | {"PYTHONPATH": str(tree)}
                times[name].append(measure_in(tree, sync_argv(db), child_env))
                times[name][-1]["size_mb"] = Path(db).stat().st_size / 2**20
                Path(db).unlink()
        print(f"\nFirst sync of {n:,} jobs (SQLite, no details), medians of {runs}:")
        print("| code | wall s | cpu s | peak RSS MB | archive MB |\n|---|---|---|---|---|")
        medians = {}
        for name, samples in times.items():
            medians[name] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            m = medians[name]
            print(f"| {name} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss_mb']:.0f} | {m['size_mb']:.1f} |")
        ours, theirs = (medians[name] for name in trees)
        print(f"ratio (wall): {ours['wall'] / theirs['wall']:.3f}; (cpu): {ours['cpu'] / theirs['cpu']:.3f}")
        print("walls:", {name: [round(s["wall"], 2) for s in samples] for name, samples in times.items()})
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)


def measure_in(tree: Path, argv: list[str], env: dict[str, str]) -> dict[str, float]:
    here = os.getcwd()
    os.chdir(tree)
    try:
        return measure(argv, env)
    finally:
        os.chdir(here)


def verify_cost(db: str, env: dict[str, str], label: str) -> None:
    made = measure(sync_argv(db), env)
    checked = measure([sys.executable, "-m", "archiver", "verify", "--db", db], env)
    out = subprocess.run(
        [sys.executable, "-m", "archiver", "verify", "--db", db, "--json"], env=env, capture_output=True
    )
    verdict = json.loads(out.stdout)
    print(
        f"| {label} | {verdict['rows']:,} | {made['wall']:.1f} | {checked['wall']:.1f} | "
        f"{checked['cpu']:.1f} | {checked['rss_mb']:.0f} | {'yes' if verdict['intact'] else 'NO'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", default="8d24b2e", help="the commit before the audit chain")
    parser.add_argument(
        "--baseline-patch", help="applied to the baseline: benchmarks/no_chain.patch takes the chain out"
    )
    parser.add_argument("--verify-jobs", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an admin URL: a fresh database is made and dropped")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for n, act in ((args.jobs, "sync"), (args.verify_jobs, "verify")):
            if not n:
                continue
            api = ScaledApi(n, n, tmp, LIMIT)
            with serve(api) as base_url:
                env = {
                    **os.environ,
                    "PORTKEY_BASE_URL": base_url,
                    "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
                    "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
                }
                if act == "sync":
                    side_by_side(n, args.runs, args.baseline, tmp, env, args.baseline_patch)
                    continue
                header = "| database | links | sync s | verify wall s | verify cpu s | peak RSS MB | intact |"
                print(f"\n`archiver verify` of an archive of {n:,} jobs (made by one first sync):")
                print(header, "\n|---|---|---|---|---|---|---|")
                verify_cost(str(tmp / "verify.db"), env, "SQLite")
                if args.postgres:
                    verify_on_postgres(args.postgres, env)
            del api


def verify_on_postgres(admin_url: str, env: dict[str, str]) -> None:
    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        verify_cost(admin.url.set(database=name).render_as_string(hide_password=False), env, "PostgreSQL")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()
