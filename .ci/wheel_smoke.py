"""Serve the fake API and sync into SQLite with an installed `archiver` (argv[1]); check the archive."""

import os
import sqlite3
import subprocess
import sys
import tempfile

from tests.fake_api import AUTH_HEADERS, FakeApi, make_jobs, serve

fake = FakeApi(make_jobs(250))
with serve(fake) as base_url, tempfile.TemporaryDirectory() as tmp:
    env = {
        **os.environ,
        "PORTKEY_BASE_URL": base_url,
        "PORTKEY_API_KEY": AUTH_HEADERS["x-portkey-api-key"],
        "PORTKEY_VIRTUAL_KEY": AUTH_HEADERS["x-portkey-virtual-key"],
    }
    subprocess.run([os.path.abspath(sys.argv[1]), "sync"], env=env, cwd=tmp, check=True)
    count = (
        sqlite3.connect(os.path.join(tmp, "archive.db")).execute("SELECT count(*) FROM jobs").fetchone()[0]
    )
assert count == 250, count
print("wheel smoke: 250 jobs archived by the installed wheel")
