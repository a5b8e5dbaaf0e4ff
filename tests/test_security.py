"""Secrets never leak; TLS is always verified; the archive file is private."""

import os
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import trustme

from archiver import db
from tests.conftest import cli_env, run_cli
from tests.fake_api import FAULTS, FakeApi, error_reply, make_jobs, serve

CANARIES = {
    "PORTKEY_API_KEY": "canary-api-key-1a2b3c",
    "PORTKEY_VIRTUAL_KEY": "canary-virtual-key-4d5e6f",
    "PORTKEY_PROVIDER_API_KEY": "canary-provider-key-7a8b9c",
    "PORTKEY_CONFIG": '{"retry": {"attempts": 0}, "api_key": "canary-config-key-0d1e2f"}',
}
DB_PASSWORD = "canary-db-password-3a4b5c"
NEEDLES = [
    "canary-api-key-1a2b3c",
    "canary-virtual-key-4d5e6f",
    "canary-provider-key-7a8b9c",
    "canary-config-key-0d1e2f",
    DB_PASSWORD,
]


def archive_text(db_url: str) -> bytes:
    """Every byte the archive holds: the SQLite files, or every row of every table on PostgreSQL."""
    if not db_url.startswith("postgresql"):
        return b"".join(p.read_bytes() for p in Path(db_url).parent.glob(Path(db_url).name + "*"))
    engine = db.make_engine(db.parse_url(db_url))
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        text = "".join(str(conn.exec_driver_sql(f"SELECT * FROM {n}").all()) for n in names)
    engine.dispose()
    return text.encode()


def test_no_secret_reaches_output_logs_archive_or_argv(db_url: str, fake: FakeApi, base_url: str) -> None:
    if db_url.startswith("postgresql"):  # the test server trusts loopback, so any password is accepted
        db_url = db_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    fake.jobs = make_jobs(300, seed=50)
    fake.required = {
        "x-portkey-api-key": CANARIES["PORTKEY_API_KEY"],
        "x-portkey-virtual-key": CANARIES["PORTKEY_VIRTUAL_KEY"],
        "authorization": "Bearer " + CANARIES["PORTKEY_PROVIDER_API_KEY"],
        "x-portkey-config": CANARIES["PORTKEY_CONFIG"],
    }
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, PORTKEY_PROVIDER="openai", **CANARIES)
    echo = error_reply(500, f"upstream said: {fake.required}")  # a gateway echoing our headers
    seen = []

    fake.faults.extend([FAULTS["503"](), echo, None, FAULTS["drop"]()])
    fake.delay = 0.05
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver", "-vv", "sync", "--retry-backoff=0.01", "--page-size=20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while fake.pages_served < 3 and proc.poll() is None:
        time.sleep(0.01)
    seen.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "DEBUG httpcore" in err and "DEBUG archiver" not in seen[0]  # really at DEBUG
    seen += [out, err]
    fake.delay = 0

    fake.faults.extend([echo] * 3)  # retries exhausted on an echoing error: the failure line
    failed = run_cli(
        "-vv", "sync", "--full", "--parallel=1", "--max-retries=2", "--retry-backoff=0.01", env=env
    )
    assert failed.returncode == 1
    assert "[redacted]" in failed.stderr
    seen += [failed.stdout, failed.stderr]

    fake.required["x-portkey-api-key"] = "something-else"  # the key is refused: 401
    refused = run_cli("-vv", "sync", "--json", env=env)
    assert refused.returncode == 2
    seen += [refused.stdout, refused.stderr]
    for what in ("runs", "status"):
        shown = run_cli(what, env=env)
        seen += [shown.stdout, shown.stderr]

    everything = "\n".join(seen).encode() + archive_text(db_url)
    assert [n for n in NEEDLES if n.encode() in everything] == []


def test_a_new_archive_is_private_and_one_anyone_may_read_is_flagged_but_a_group_one_is_not(
    tmp_path: Path, fake: FakeApi, base_url: str
) -> None:
    fake.jobs = make_jobs(10)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    result = subprocess.run(
        ["sh", "-c", f"umask 022 && exec {sys.executable} -m archiver sync"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.db": 0o600, "a.db-wal": 0o600, "a.db-shm": 0o600, "a.db.lock": 0o600} or modes == {
        "a.db": 0o600,
        "a.db.lock": 0o600,
    }
    os.chmod(tmp_path / "a.db", 0o640)  # shared with a group of auditors, as the README says
    shared = run_cli("-q", "sync", env=env)
    assert (shared.returncode, shared.stderr) == (0, "")
    os.chmod(tmp_path / "a.db", 0o644)
    again = run_cli("sync", env=env)
    assert again.returncode == 0
    assert f"archive {tmp_path / 'a.db'} is readable by others (mode 644); chmod 600 it" in again.stderr


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls_is_verified_and_a_private_ca_can_be_trusted(tmp_path: Path, ca: trustme.CA) -> None:
    fake = FakeApi(make_jobs(10))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve(fake, tls=context) as base_url:
        env = cli_env(base_url, ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
        untrusted = run_cli("sync", "--max-retries=0", env=env)
        trusted = run_cli("sync", f"--ca-bundle={ca_file}", env=env)
    assert untrusted.returncode == 1
    line = untrusted.stderr.strip().splitlines()[-1]
    assert line.startswith("archiver: error: GET https://127.0.0.1:")
    assert "the TLS certificate of 127.0.0.1 is not trusted ([SSL: CERTIFICATE_VERIFY_FAILED]" in line
    assert line.endswith("use --ca-bundle for a private CA")
    assert trusted.returncode == 0, trusted.stderr
    assert len(fake.list_requests()) == 1  # the trusted run; the untrusted one never got a request through
    assert trusted.returncode == 0, trusted.stderr
    assert "Synced 10 jobs (10 new" in trusted.stderr
