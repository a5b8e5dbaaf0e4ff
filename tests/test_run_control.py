"""Real `archiver sync` processes: kill -9 at random moments, overlapping runs, signals.

The walk is what these cut off, so most runs leave the details out (`LIST_ONLY`): fetching them
would double each test's time. The random interrupts keep them, so that a signal lands in that
phase too; tests/test_details_faults.py cuts the details off at every job."""

import random
import re
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from archiver import db, models
from archiver.models import sync_gaps, sync_runs
from tests.conftest import assert_archive_equals, cli_env, expected_archive, read_archive
from tests.fake_api import FakeApi, make_jobs

LIMIT = 50
LIST_ONLY = {"ARCHIVER_DETAILS": "0"}
BUSY = r"archiver: error: another sync is running \(pid \d+, since \d\d:\d\d:\d\d\)\n"


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", "sync", f"--page-size={LIMIT}", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sync_until_done(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run right after a kill may still find PostgreSQL's lock held for a moment: try again then."""
    for _ in range(50):
        proc = start(env)
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 75:
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        time.sleep(0.1)
    raise AssertionError("the lock never came free")


def assert_whole_pages(engine: sa.Engine, served: list[dict]) -> int:
    """The archive is exactly the first k jobs served, k a whole number of pages; the checkpoint agrees."""
    archived = read_archive(engine)
    k = len(archived["jobs"])
    assert k % LIMIT == 0 or k == len(served), f"{k} jobs: a torn page"
    assert archived == expected_archive(served[:k])
    with engine.connect() as conn:
        gaps = [tuple(g) for g in conn.execute(sa.select(sync_gaps.c.after_id, sync_gaps.c.until_id))]
    if k == len(served):
        assert gaps in ([], [(served[-1]["id"], None)])
    elif k:
        assert gaps == [(served[k - 1]["id"], None)]  # the first walk's gap starts after its last page
    return k


def test_kill_9_at_random_moments_never_tears_a_page(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(1500, seed=30)
    fake.delay = 0.02
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, **LIST_ONLY)
    engine = db.make_engine(db.parse_url(db_url))
    rng = random.Random(30)
    progress = []
    for _trial in range(20):
        target = fake.pages_served + rng.randint(1, 4)  # kill once the walk has been served that far
        proc = start(env)
        deadline = time.monotonic() + 30
        while fake.pages_served < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))  # anywhere within the page's write
        proc.kill()
        proc.communicate()
        if sa.inspect(engine).has_table("sync_gaps"):
            progress.append(assert_whole_pages(engine, fake.jobs))
    assert any(0 < k < len(fake.jobs) for k in progress), f"no kill landed mid-walk: {progress}"
    final = sync_until_done(env)
    assert final.returncode == 0, final.stderr
    assert_archive_equals(engine, fake.jobs)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()


def test_three_syncs_at_once_one_works_the_others_exit_75(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(1000, seed=31)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, **LIST_ONLY)
    warm = subprocess.run([sys.executable, "-m", "archiver", "db", "upgrade"], env=env, capture_output=True)
    assert warm.returncode == 0
    fake.delay = 0.1  # the winner needs 2 s or more for its 20 pages
    procs = [start(env) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while sum(p.poll() is not None for p in procs) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        losers = [p for p in procs if p.poll() is not None]
        [winner] = [p for p in procs if p.poll() is None]  # the losers left while the winner still works
        assert [p.returncode for p in losers] == [75, 75]
        for p in losers:
            out, err = p.communicate()
            assert (out, re.fullmatch(BUSY, err) is not None) == ("", True), err
        winner.communicate(timeout=120)
    finally:
        for p in procs:  # a failed assertion must not leave a process for a later test to trip on
            if p.returncode is None:
                p.kill()
                p.communicate()
    assert winner.returncode == 0
    engine = db.make_engine(db.parse_url(db_url))
    assert_archive_equals(engine, fake.jobs)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_runs.c.status)).scalars().all() == ["succeeded"]
    engine.dispose()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_rolls_back_the_page_and_records_the_run(
    db_url: str, fake: FakeApi, base_url: str, signum: int, code: int
) -> None:
    fake.jobs = make_jobs(1000, seed=32)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, **LIST_ONLY)
    fake.delay = 0.05
    proc = start(env)
    deadline = time.monotonic() + 60
    while fake.pages_served < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"archiver: interrupted by {signal.Signals(signum).name}"
    engine = db.make_engine(db.parse_url(db_url))
    k = assert_whole_pages(engine, fake.jobs)
    assert 0 < k < 1000
    with engine.connect() as conn:
        run = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.pages)).one()
    assert tuple(run) == ("interrupted", k // LIMIT)
    fake.delay = 0
    again = sync_until_done(env)
    assert again.returncode == 0, again.stderr
    assert_archive_equals(engine, fake.jobs)
    engine.dispose()


def test_interrupts_at_random_moments_are_recorded_with_the_counters_of_what_was_committed(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    """Sixteen SIGINTs at random moments of a first sync (a page's transaction among them): each
    run ends `interrupted` at once, never `running`, and the runs' counters add up to the archive."""
    rng = random.Random(16)
    fake.jobs = make_jobs(3000, seed=16)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, PYTHONFAULTHANDLER="1")
    fake.delay = 0.01
    for _ in range(16):
        served = fake.pages_served
        proc = start(env)
        deadline = time.monotonic() + 60
        while fake.pages_served <= served and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack on stderr
            pytest.fail(f"still running 10 s after SIGINT:\n{proc.communicate()[1][-6000:]}")
        finally:
            proc.kill()
        assert proc.returncode in (0, 130), err
        assert "could not record" not in err
    engine = db.make_engine(db.parse_url(db_url))
    with engine.connect() as conn:
        runs = conn.execute(sa.select(sync_runs.c.status, sync_runs.c.jobs_inserted)).all()
        archived = conn.execute(sa.select(sa.func.count()).select_from(models.jobs)).scalar_one()
    assert {status for status, _ in runs} <= {"interrupted", "succeeded"}
    assert sum(inserted for _, inserted in runs) == archived
    engine.dispose()


def test_an_interrupt_while_a_slow_page_is_in_flight_does_not_wait_for_it(
    db_url: str, fake: FakeApi, base_url: str
) -> None:
    """A page takes 10 s; SIGINT arrives while one is in flight: the run is recorded and the
    process gone long before the page would have come (it waits at most half a second for it)."""
    fake.jobs = make_jobs(500, seed=17)
    env = cli_env(base_url, ARCHIVER_DATABASE_URL=db_url, **LIST_ONLY)
    assert sync_until_done(env).returncode == 0  # the schema exists: the run starts at once
    fake.jobs[:0] = make_jobs(1, seed=18)
    fake.delay = 10.0
    served = len(fake.list_requests())
    proc = start(env, "--full")
    deadline = time.monotonic() + 30
    while len(fake.list_requests()) == served and time.monotonic() < deadline:
        time.sleep(0.01)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 5  # not the 10 s the page takes
    engine = db.make_engine(db.parse_url(db_url))
    with engine.connect() as conn:
        last = conn.execute(sa.select(sync_runs.c.status).order_by(sync_runs.c.id.desc())).first()
    assert last is not None and last.status == "interrupted"
    engine.dispose()
