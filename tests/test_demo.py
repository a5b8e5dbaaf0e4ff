"""`archiver demo`: runs again and again, serves the fake API for a real `archiver sync`, and its
history looks like a team's."""

import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from archiver.cli.demo import SPAN, demo_api
from archiver.generate import FAILURES, PLAIN
from tests.conftest import cli_env, run_cli


def demo_env() -> dict[str, str]:
    env = cli_env("unused")
    return {k: v for k, v in env.items() if not k.startswith("PORTKEY_")}


def test_the_demo_runs_again_replacing_its_own_archive(tmp_path: Path) -> None:
    first = run_cli("demo", "--jobs", "200", env=demo_env(), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli("demo", "--jobs", "200", env=demo_env(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0] == "Replaced the earlier demo archive demo.db"
    assert (
        again.stdout.split()[:4]
        == first.stdout.split()[:4]
        == ["status", "jobs", "oldest_created", "newest_created"]
    )
    runs = sqlite3.connect(tmp_path / "demo.db").execute("SELECT id, mode FROM sync_runs").fetchall()
    assert runs == [(1, "incremental"), (2, "incremental")]  # started over, not added to


def test_the_demo_never_replaces_a_file_that_is_not_an_earlier_demo(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("my notes")
    sqlite3.connect(tmp_path / "empty.db").close()
    for name in ("notes.db", "empty.db"):
        before = (tmp_path / name).read_bytes()
        result = run_cli("demo", "--db", name, "--jobs", "20", env=demo_env(), cwd=tmp_path)
        assert (result.returncode, result.stderr) == (
            2,
            f"archiver: error: {name} exists and is not an earlier demo's archive: remove it, "
            "or give --db a new file\n",
        )
        assert (tmp_path / name).read_bytes() == before


def ctrl_c() -> None:
    """In the server's process: SIGINT as a terminal sends it, even where the test's own process
    ignores it (a job started with `&` by a shell without job control inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_serve_prints_the_variables_that_point_a_real_sync_at_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "archiver", "demo", "--serve", "--jobs", "150", "--tick", "1"]
    env = demo_env()
    log = tmp_path / "serve.log"  # a file, not a pipe: a long run's log never fills it and blocks the server
    with (
        log.open("w") as err,
        subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=ctrl_c
        ) as server,
    ):
        assert server.stdout is not None
        exports = [server.stdout.readline() for _ in range(3)]
        assert [line.split("=")[0] for line in exports] == [
            "export PORTKEY_BASE_URL",
            "export PORTKEY_API_KEY",
            "export PORTKEY_VIRTUAL_KEY",
        ]
        settings = dict(line.removeprefix("export ").strip().split("=", 1) for line in exports)
        assert settings["PORTKEY_BASE_URL"].startswith("http://127.0.0.1:")
        synced = run_cli("sync", "--json", env={**env, **settings}, cwd=tmp_path)
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["jobs_inserted"] >= 150
        time.sleep(1.5)  # the history moves on
        again = run_cli("sync", "--json", env={**env, **settings}, cwd=tmp_path)
        assert json.loads(again.stdout)["jobs_inserted"] > 0
        status = run_cli("status", env=env, cwd=tmp_path)
        assert (status.returncode, status.stdout.startswith("OK: ")) == (0, True)
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    assert log.read_text().splitlines()[-1] == "Stopped serving the demo API"


def test_the_demo_history_looks_like_a_teams() -> None:
    """At most two years back whatever its size; failures say what went wrong; models differ in pace."""
    for size in (3000, 100_000):
        jobs = demo_api(size, seed=7).jobs
        created = [j["created_at"] for j in jobs]
        assert max(created) - min(created) <= SPAN
        assert time.time() - min(created) <= SPAN + 86400
    messages = {j["error"]["message"] for j in jobs if j["status"] == "failed"}
    assert messages <= {m for found in FAILURES.values() for m in found} and len(messages) >= 5
    assert not messages & set(PLAIN)
    medians = {
        model: statistics.median(
            j["finished_at"] - j["created_at"]
            for j in jobs
            if j["model"] == model and j["status"] == "succeeded"
        )
        for model in {j["model"] for j in jobs}
    }
    assert max(medians.values()) > 3 * min(medians.values()), medians
