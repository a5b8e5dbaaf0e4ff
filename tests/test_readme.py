"""The README's own cron lines and sample outputs, checked as written: they must not drift from the code."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archiver import db
from tests.conftest import assert_archive_equals
from tests.fake_api import API_KEY, VIRTUAL_KEY, FakeApi, make_jobs, serve
from tests.readme_samples import README as SAMPLES_PAGE
from tests.readme_samples import build, in_readme, samples

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
LOAD = "set -a; . ./portkey.env; set +a"  # how the set-up loads the settings


def cron_commands() -> dict[str, str]:
    """The README's cron lines: the command after the five schedule fields, by subcommand."""
    [block] = re.findall(r"```cron\n(.*?)```", README.read_text(), re.S)
    commands = [line.split(None, 5)[5] for line in block.splitlines() if line.strip()]
    return {re.search(r"archiver (\w+)", c)[1]: c for c in commands}  # type: ignore[index]


def run_cron_line(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    """As cron runs it: /bin/sh -c, no inherited environment, the README's /srv/archiver at `home`."""
    return subprocess.run(
        ["env", "-i", "/bin/sh", "-c", command.replace("/srv/archiver", str(home))],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lay_out(home: Path, base_url: str, db_url: str) -> None:
    """The directory the README's set-up leaves: portkey.env (from the example, chmod 600), .venv."""
    example = (ROOT / "portkey.env.example").read_text()
    assert "PORTKEY_API_KEY=pk-replace-me" in example and "PORTKEY_VIRTUAL_KEY=vk-replace-me" in example
    settings = example.replace("pk-replace-me", API_KEY).replace("vk-replace-me", VIRTUAL_KEY)
    settings += f"PORTKEY_BASE_URL={base_url}\n"
    if "://" in db_url:  # PostgreSQL; SQLite is the default, archive.db in the directory
        settings += f"ARCHIVER_DATABASE_URL='{db_url}'\n"
    env_file = home / "portkey.env"
    env_file.write_text(settings)
    env_file.chmod(0o600)
    bin_dir = home / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    installed = Path(sys.executable).parent / "archiver"  # this interpreter's console script
    if installed.exists():
        (bin_dir / "archiver").symlink_to(installed)
    else:
        (bin_dir / "archiver").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m archiver "$@"\n')
        (bin_dir / "archiver").chmod(0o755)


def test_the_cron_lines_load_the_settings_as_the_set_up_does() -> None:
    readme = README.read_text()
    setup = readme.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert f"\n{LOAD}\n" in setup
    commands = cron_commands()
    assert sorted(commands) == ["status", "sync"]
    assert all(f"{{ {LOAD}; }}" in c for c in commands.values()), commands


def test_the_readme_cron_lines_run_with_no_inherited_environment(db_url: str, tmp_path: Path) -> None:
    """tmp_path is /srv/archiver; on SQLite db_url is tmp_path/archive.db, the default archive."""
    fake = FakeApi(make_jobs(130, seed=23))
    commands = cron_commands()
    with serve(fake) as base_url:
        lay_out(tmp_path, base_url, db_url)
        synced = run_cron_line(commands["sync"], tmp_path)
    assert (synced.returncode, synced.stdout, synced.stderr) == (0, "", "")
    log = (tmp_path / "sync.log").read_text()
    assert re.fullmatch(r"(\S+Z Migrated .*\n)?\S+Z Synced 130 jobs \(130 new, .*\n", log), log
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()
    status = run_cron_line(commands["status"], tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("OK: last successful sync "), status.stdout
    assert (tmp_path / "portkey.env").stat().st_mode & 0o777 == 0o600
    assert not os.path.exists(tmp_path / "env")


@pytest.mark.parametrize("line", ["sync", "status"])
def test_a_cron_line_without_the_settings_file_fails_and_says_so(line: str, tmp_path: Path) -> None:
    result = run_cron_line(cron_commands()[line], tmp_path)
    assert result.returncode != 0
    assert "portkey.env" in result.stderr


def test_the_readme_samples_are_what_readme_samples_py_writes(db_url: str) -> None:
    """Run `python tests/readme_samples.py` when this fails (the same samples on both backends), which
    writes them into docs/reports.md."""
    build(db_url)
    assert samples(db_url) == in_readme(SAMPLES_PAGE.read_text())
