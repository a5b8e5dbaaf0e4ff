"""Run the README's two set-up commands verbatim, as a stranger would: a fresh copy of the repo, a
shell with no inherited environment (env -i, no LANG), the fake API on 127.0.0.1 behind portkey.env.

    python .ci/readme_commands.py

1. The sync command (the first ```sh block): archive.db must hold every job the fake served.
2. The keyless demo command, twice (a second run starts the demo over): each must exit 0 and print
   the status_overview report.
"""

import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_api import API_KEY, VIRTUAL_KEY, FakeApi, make_jobs, serve

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```sh\n(.*?)```", ROOT.joinpath("README.md").read_text(), re.S)
SYNC = next(b for b in BLOCKS if "archiver sync" in b and "portkey.env" in b)
DEMO = next(b for b in BLOCKS if "archiver demo" in b and "pip install" in b)


def stranger(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(cwd), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    return subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def fresh_copy(into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into / "archiver")], check=True)
    return into / "archiver"


def main() -> int:
    fake = FakeApi(make_jobs(300, seed=11))
    with tempfile.TemporaryDirectory() as tmp, serve(fake) as base_url:
        repo = fresh_copy(Path(tmp))
        env_file = repo / "portkey.env"
        env_file.write_text(
            f"PORTKEY_API_KEY={API_KEY}\nPORTKEY_VIRTUAL_KEY={VIRTUAL_KEY}\nPORTKEY_BASE_URL={base_url}\n"
        )
        env_file.chmod(0o600)
        done = stranger(SYNC, repo)
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n")
            return 1
        count = sqlite3.connect(repo / "archive.db").execute("SELECT count(*) FROM jobs").fetchone()[0]
        print(f"README sync command: exit 0, {count} of {len(fake.jobs)} jobs archived")
        if count != len(fake.jobs):
            return 1
        shutil.rmtree(repo / ".venv")
        for run in ("first", "second"):
            demo = stranger(DEMO, repo)
            print(f"README demo command, {run} run: exit {demo.returncode}")
            if demo.returncode != 0 or "status" not in demo.stdout or "succeeded" not in demo.stdout:
                print(demo.stdout, demo.stderr, sep="\n")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
