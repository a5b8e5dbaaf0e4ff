"""Terminal manners, checked on a real pseudo-terminal: tables fit its width, verdicts are coloured;
a pipe gets every value whole and no escape codes."""

import contextlib
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import sqlalchemy as sa
import wcwidth

from archiver.errors import ApiError
from archiver.sync import sync
from tests.conftest import cli_env, run_cli
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for

ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def in_terminal(*args: str, env: dict[str, str], columns: int = 80) -> tuple[int, str]:
    """Run archiver with stdout and stderr on a pseudo-terminal `columns` wide; its exit code and
    what it wrote (line ends as the terminal sends them, \\r\\n, made \\n)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    with subprocess.Popen(
        [sys.executable, "-m", "archiver", *args], env=env, stdout=secondary, stderr=secondary
    ) as proc:
        os.close(secondary)
        seen = b""
        with contextlib.suppress(OSError):  # EIO once everything the child wrote has been read
            while chunk := os.read(primary, 65536):
                seen += chunk
        code = proc.wait(timeout=60)
    os.close(primary)
    return code, seen.decode().replace("\r\n", "\n")


def cells(line: str) -> int:
    return wcwidth.wcswidth(ESCAPES.sub("", line))


def archive_with_a_failed_run(engine: sa.Engine, fake: FakeApi) -> dict[str, str]:
    fake.jobs = make_jobs(12)
    sync(api_for(fake), engine)
    fake.outage_after = 0
    with contextlib.suppress(ApiError):
        sync(api_for(fake, max_retries=0), engine)
    return cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))


def test_tables_fit_the_terminal_width_and_a_pipe_gets_every_value_whole(
    engine: sa.Engine, fake: FakeApi
) -> None:
    env = archive_with_a_failed_run(engine, fake)
    for args in (["report"], ["runs"], ["tables"], ["report", "in_flight"]):
        code, shown = in_terminal(*args, env=env, columns=80)
        assert code == 0, shown
        lines = shown.splitlines()
        assert max(cells(line) for line in lines) <= 80, (args, shown)
        piped = run_cli(*args, env=env).stdout.splitlines()
        assert len(piped) == len(lines), args
        if max(cells(line) for line in piped) > 80:  # cut to fit: the cut values end in "…"
            assert "…" in shown and "…" not in "\n".join(piped), args
        else:
            assert lines == piped, args
    wide_code, wide = in_terminal("runs", env=env, columns=400)
    assert (wide_code, wide.splitlines()) == (0, run_cli("runs", env=env).stdout.splitlines())


def test_a_cut_table_keeps_its_headers_and_narrows_the_widest_column_first(
    engine: sa.Engine, fake: FakeApi
) -> None:
    env = archive_with_a_failed_run(engine, fake)
    _, shown = in_terminal("runs", env=env, columns=150)
    header, _rule, failed, succeeded = shown.splitlines()
    whole = run_cli("runs", env=env).stdout.splitlines()
    assert header == whole[0] and succeeded == whole[3]  # only the error column, the widest, is cut
    assert failed.endswith("…") and whole[2].startswith(failed[:-1]) and cells(failed) == 150


def test_status_colours_its_verdict_on_a_terminal_only_and_never_with_no_color(
    engine: sa.Engine, fake: FakeApi
) -> None:
    fake.jobs = make_jobs(3)
    sync(api_for(fake), engine)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    code, shown = in_terminal("status", env=env)
    assert code == 0 and shown.startswith("\x1b[32m\x1b[1mOK\x1b[0m: last successful sync "), repr(shown)
    _, plain = in_terminal("status", env={**env, "NO_COLOR": "1"})
    assert plain.startswith("OK: last successful sync ") and "\x1b" not in plain
    piped = run_cli("status", env=env)
    assert piped.stdout.startswith("OK: ") and "\x1b" not in piped.stdout
    fake.outage_after = 0
    with contextlib.suppress(ApiError):
        sync(api_for(fake, max_retries=0), engine)
    code, failed = in_terminal("status", env=env)
    assert code == 1 and failed.startswith("\x1b[31m\x1b[1mFAILED\x1b[0m: last run 2 failed "), repr(failed)
