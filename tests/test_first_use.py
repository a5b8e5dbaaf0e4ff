"""What a newcomer meets first: database URLs that would keep nothing, placeholder keys, install
hints, and error messages that stay readable."""

import re
import tomllib
from pathlib import Path

import httpx
import pytest

from archiver import Archive, ConfigError
from archiver.client import api_message
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi, make_jobs

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["sync"],
    ["status"],
    ["runs"],
    ["report", "status_overview"],
    ["query", "SELECT 1"],
    ["tables"],
    ["dashboard", "-o", "-"],
    ["datasette-metadata"],
    ["db", "current"],
    ["db", "upgrade"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_sqlite_url_with_two_slashes_is_one_line_naming_the_fix_in_every_command(
    command: list[str], tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    result = run_cli(*command, "--db", "sqlite://demo.db", env=cli_env(base_url), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "archiver: error: 'sqlite://demo.db' names a host, not a file: a SQLite URL has three slashes "
        "(sqlite:///demo.db) or four for an absolute path, or give the plain path demo.db\n",
    )
    assert list(tmp_path.iterdir()) == []
    assert fake.requests == []


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"])
def test_sync_refuses_an_in_memory_archive_before_any_request(
    url: str, tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(3)
    result = run_cli("sync", "--db", url, env=cli_env(base_url), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"archiver: error: '{url}' is an in-memory database, which keeps nothing: "
        "give a file path such as archive.db\n",
    )
    assert fake.requests == []


@pytest.mark.parametrize("url", ["sqlite://demo.db", "sqlite://", "sqlite:///:memory:", ":memory:", ""])
def test_the_library_raises_config_error_for_a_url_that_names_no_file(url: str) -> None:
    with pytest.raises(ConfigError):
        Archive(url)


def test_a_url_that_cannot_be_parsed_is_shown_with_its_password_masked() -> None:
    with pytest.raises(ConfigError) as e:
        Archive("postgresql://me:hunter2-secret@db.internal:port/archive")
    assert str(e.value) == "not a database URL or file path: 'postgresql://me:***@db.internal:port/archive'"


def test_the_example_settings_file_unedited_is_refused_before_anything_is_created(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    example = (ROOT / "portkey.env.example").read_text()
    values = dict(re.findall(r"^(PORTKEY_\w+)=(\S+)$", example, re.M))
    assert set(values) == {"PORTKEY_API_KEY", "PORTKEY_VIRTUAL_KEY"}
    result = run_cli("sync", env=cli_env(base_url, **values), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "archiver: error: PORTKEY_API_KEY and PORTKEY_VIRTUAL_KEY still hold the placeholder of "
        "portkey.env.example (replace-me): put your own values in portkey.env\n",
    )
    assert list(tmp_path.iterdir()) == []
    assert fake.requests == []


def test_the_distribution_is_not_named_after_the_unrelated_archiver_on_pypi() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ft-archiver"
    assert project["scripts"] == {"archiver": "archiver.cli:cli"}


def test_no_install_hint_names_a_package_called_archiver() -> None:
    """`pip install archiver` or `'archiver[postgres]'` installs someone else's 2011 project."""
    files = [*ROOT.glob("archiver/**/*.py"), *ROOT.glob("docs/*.md"), *ROOT.glob(".ci/*")]
    files += [ROOT / "README.md", ROOT / "portkey.env.example"]
    hint = re.compile(r"(pip|pipx|uv pip|uv tool) install (-\S+ )*['\"]?archiver\b")
    offending = [f"{f.relative_to(ROOT)}: {m[0]}" for f in files for m in hint.finditer(f.read_text())]
    assert offending == []


def test_an_api_error_message_is_redacted_whole_tokens_only_for_a_short_secret() -> None:
    body = {"error": {"message": "Invalid x-portkey-api-key: x is not a key"}}
    reply = httpx.Response(401, json=body)
    assert api_message(reply, ["x"]) == ": Invalid x-portkey-api-key: [redacted] is not a key"
    long = httpx.Response(401, json={"error": {"message": "key pk-long-secret-9 refused"}})
    assert api_message(long, ["Bearer pk-long-secret-9"]) == ": key [redacted] refused"


def test_a_one_letter_api_key_does_not_garble_the_error_the_cli_prints(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    fake.required = {"x-portkey-api-key": "the-right-key"}
    env = cli_env(base_url, PORTKEY_API_KEY="x", ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    result = run_cli("sync", env=env)
    assert result.returncode == 2
    assert "jobs: HTTP 401: Invalid or missing x-portkey-api-key: the credentials" in result.stderr
