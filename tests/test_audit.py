"""The audit trail on SQLite and PostgreSQL: every tamper an insider could make is caught by
`archiver verify`; a consistent rewrite only against checkpoints kept elsewhere; signatures."""

import contextlib
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver import Archive, Portkey, chain, dashboard
from archiver.fake_details import add_details
from archiver.models import chain_head, job_history, jobs, sync_runs
from tests.conftest import cli_env, pg_admin, run_cli, scratch_database
from tests.fake_api import API_KEY, VIRTUAL_KEY, FakeApi, add_new_jobs, finish_job, make_jobs


def write_keys(tmp_path: Path, name: str = "archiver") -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def history(
    fake: FakeApi, archive: Archive | None, base_url: str, log: Path, key: Path | None = None
) -> None:
    """Three runs: a first sync with details, jobs finishing and arriving, then a no-op (with no
    `archive`, only what the API does meanwhile: the fake as the runs would have left it)."""
    route = Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url)
    fake.jobs = make_jobs(25, seed=7)
    for job in fake.jobs[:10]:
        finish_job(job)
    add_details(fake, seed=7)
    for _ in range(2):
        if archive:
            archive.sync(route, checkpoint_log=log, signing_key=key, parallel=1)
        for job in fake.jobs[10:14]:
            finish_job(job)
        add_new_jobs(fake.jobs, 3, random.Random(7))
    if archive:
        archive.sync(route, checkpoint_log=log, signing_key=key)


# The archive `history` makes, once per backend (and test worker): (a SQLite file or a PostgreSQL
# database to copy, the checkpoint log's text). Each test tampers with a copy of its own.
MADE: dict[str, tuple[str, str]] = {}
MADE_DATABASES = contextlib.ExitStack()  # conftest's scratch databases, dropped with the module


@pytest.fixture(scope="module", autouse=True)
def drop_made() -> Iterator[None]:
    with MADE_DATABASES:
        yield
    MADE.clear()


@pytest.fixture
def archived(
    db_url: str, fake: FakeApi, base_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Archive, Path]]:
    log = tmp_path / "checkpoints.log"
    backend = "postgresql" if "://" in db_url else "sqlite"
    if backend not in MADE:
        made = MADE_DATABASES.enter_context(
            scratch_database(backend, tmp_path_factory.mktemp("made") / "a.db")
        )
        archive = Archive(made)
        history(fake, archive, base_url, log)
        archive.close()
        MADE[backend] = made, log.read_text()
    else:
        history(fake, None, base_url, log)
    made, text = MADE[backend]
    copy_archive(made, db_url)
    log.write_text(text)
    archive = Archive(db_url)
    yield archive, log
    archive.close()


def copy_archive(made: str, to: str) -> None:
    if "://" not in made:
        for suffix in ("", "-wal"):  # closed, SQLite has emptied its write-ahead log: in case not
            if Path(made + suffix).exists():
                shutil.copyfile(made + suffix, to + suffix)
        return
    source, target = (sa.make_url(u).database for u in (made, to))
    admin = pg_admin()
    assert admin is not None
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{target}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    admin.dispose()


def sql(archive: Archive, statement: str, **params: Any) -> Any:
    with archive.engine(write=True).begin() as conn:
        return conn.execute(sa.text(statement), params)


def failures(archive: Archive, log: Path | None = None, key: Path | None = None) -> dict[str, str]:
    return archive.verify(log, key).first


def test_an_untouched_archive_is_intact_and_anchored_by_its_last_checkpoint(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    verdict = archive.verify(log)
    assert verdict.first == {}
    with archive.engine().connect() as conn:
        links = sum(
            conn.execute(sa.select(sa.func.count()).where(t.c.seq.is_not(None))).scalar_one()
            for t in (job_history, sync_runs)
        )
        details, jobs_with_details = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT job_id) FROM detail_history")
        ).one()
        final = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.status.in_(["succeeded", "failed", "cancelled"]))
        ).scalar_one()
        last_run = conn.execute(
            sa.select(sync_runs.c.seq, sync_runs.c.hash).order_by(sync_runs.c.id.desc())
        ).first()
    assert verdict.rows == links + details == verdict.last_seq
    assert details == jobs_with_details == final  # every final job's details archived once
    assert verdict.anchored_seq == verdict.last_seq == last_run.seq  # the last run's row ends the chain
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(m["seq"], m["hash"]) for m in lines][-1] == (last_run.seq, last_run.hash)
    assert len(lines) == 3


def newest_and_older(archive: Archive) -> tuple[int, int]:
    """A job's history row that is not its newest, and one that is (by id)."""
    with archive.engine().connect() as conn:
        counts = conn.execute(
            sa.text("SELECT job_id, min(id), max(id) FROM job_history GROUP BY job_id HAVING count(*) > 1")
        ).first()
    return counts[1], counts[2]


def seq_of(archive: Archive, history_id: int) -> int:
    with archive.engine().connect() as conn:
        return conn.execute(sa.select(job_history.c.seq).where(job_history.c.id == history_id)).scalar_one()


def test_editing_a_history_rows_json_is_caught_at_its_seq(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    sql(archive, "UPDATE job_history SET raw = :raw WHERE id = :id", raw='{"id": "forged"}', id=older)
    found = failures(archive, log)
    assert set(found) == {"record"}
    assert found["record"].startswith(f"seq {seq_of(archive, older)} (job_history): raw_sha256 is ")


def test_a_record_that_is_json_but_not_an_object_is_caught_not_raised(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    sql(archive, "UPDATE job_history SET record = '[1]' WHERE id = :id", id=older)
    assert {"hash", "link", "record"} <= set(failures(archive, log))


def test_editing_a_typed_column_of_jobs_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    sql(archive, "UPDATE jobs SET trained_tokens = 1 WHERE id = (SELECT min(id) FROM jobs)")
    found = failures(archive, log)
    assert set(found) == {"current"}
    assert "trained_tokens is 1, its JSON says" in found["current"]


def test_editing_a_typed_column_of_a_job_whose_record_has_no_digest_is_caught(
    archived: tuple[Archive, Path],
) -> None:
    archive, _ = archived
    rechain(archive)  # as migration 0011 builds it: no record holds the digest of its job's rows
    sql(archive, "UPDATE jobs SET trained_tokens = 1 WHERE id = (SELECT min(id) FROM jobs)")
    found = failures(archive)
    assert set(found) == {"current"}
    assert "trained_tokens is 1, its JSON says" in found["current"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL refuses text not UTF-8
def test_a_value_that_is_not_utf8_text_is_caught_and_read_with_a_replacement_character(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    sql(archive, "UPDATE jobs SET model = CAST(X'6d6fff' AS TEXT) WHERE id = (SELECT min(id) FROM jobs)")
    found = failures(archive, log)
    assert set(found) == {"current"}
    assert "model is 'mo\ufffd', its JSON says" in found["current"]


def retyped(archive: Archive) -> tuple[str, str, str]:
    """A job whose JSON says n_epochs 3: its id, its JSON text, that text with 3.0 for 3."""
    with archive.engine().connect() as conn:
        job_id, raw = conn.execute(
            sa.select(jobs.c.id, chain.raw_text(jobs.c.raw)).where(jobs.c.n_epochs == "3").order_by(jobs.c.id)
        ).first()
    forged = raw.replace('"n_epochs":3', '"n_epochs":3.0', 1)
    assert forged != raw and json.loads(forged) == json.loads(raw)  # equal in Python, "3.0" normalized
    return job_id, raw, forged


def newest_seq(archive: Archive, job_id: str) -> int:
    with archive.engine().connect() as conn:
        query = sa.select(sa.func.max(job_history.c.seq)).where(job_history.c.job_id == job_id)
        return conn.execute(query).scalar_one()


def test_a_jobs_json_retyped_to_parse_equal_is_caught_at_its_newest_history_rows_seq(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    job_id, _, forged = retyped(archive)
    sql(archive, "UPDATE jobs SET raw = :raw WHERE id = :id", raw=forged, id=job_id)
    found = failures(archive, log)
    assert set(found) == {"record"}  # jobs.raw is the JSON its newest history row hashed
    assert found["record"].startswith(f"seq {newest_seq(archive, job_id)} (job_history): raw_sha256 is ")


def test_a_jobs_json_retyped_beside_its_history_rows_own_copy_is_caught_as_current(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    job_id, raw, forged = retyped(archive)
    sql(
        archive,
        "UPDATE job_history SET raw = :raw WHERE seq = :seq",
        raw=raw,
        seq=newest_seq(archive, job_id),
    )
    assert failures(archive, log) == {}  # the newest row holding its JSON itself is no tamper
    sql(archive, "UPDATE jobs SET raw = :raw WHERE id = :id", raw=forged, id=job_id)
    found = failures(archive, log)
    assert set(found) == {"current"}
    assert "n_epochs is '3', its JSON says '3.0'" in found["current"]


def test_emptying_an_older_history_rows_json_is_caught_at_its_seq(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    sql(archive, "UPDATE job_history SET raw = NULL WHERE id = :id", id=older)
    found = failures(archive, log)
    assert set(found) == {"record"}  # its JSON is then read from jobs.raw: a later version
    assert found["record"].startswith(f"seq {seq_of(archive, older)} (job_history): raw_sha256 is ")


def test_a_sync_that_changes_a_job_moves_its_old_json_into_the_history(
    archived: tuple[Archive, Path], fake: FakeApi, base_url: str
) -> None:
    archive, log = archived
    job = fake.jobs[-1]  # the oldest (the history adds the same new jobs twice)
    before = json.loads(history_json(archive, job["id"])[-1])
    job["metadata"] = {"edited": "after archiving"}
    route = Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url)
    assert archive.sync(route, checkpoint_log=log, full=True).updated == 1
    with archive.engine().connect() as conn:
        held = (
            conn.execute(
                sa.select(job_history.c.raw.is_not(None))
                .where(job_history.c.job_id == job["id"])
                .order_by(job_history.c.id)
            )
            .scalars()
            .all()
        )
    versions = [json.loads(text) for text in history_json(archive, job["id"])]
    assert held[-2:] == [True, False]  # the newest row's JSON is jobs.raw; the one before holds its own
    assert versions[-2:] == [before, fake.served(job)]
    assert failures(archive, log) == {}


def delete_job_keeping_its_history(archive: Archive) -> tuple[str, int]:
    """Delete a job's row, foreign keys (their cascade) off: its id, its newest history row's seq."""
    _, newest = newest_and_older(archive)
    with archive.engine().connect() as conn:
        job_id, seq = conn.execute(
            sa.select(job_history.c.job_id, job_history.c.seq).where(job_history.c.id == newest)
        ).one()
    engine = archive.engine(write=True)
    sqlite = engine.dialect.name == "sqlite"
    driver = engine.raw_connection()  # SQLite: autocommit, so the pragma is outside a transaction
    try:
        cursor = driver.cursor()
        cursor.execute("PRAGMA foreign_keys = OFF" if sqlite else "SET session_replication_role = replica")
        cursor.execute(f"DELETE FROM jobs WHERE id = {'?' if sqlite else '%s'}", (job_id,))
        cursor.execute("PRAGMA foreign_keys = ON" if sqlite else "SET session_replication_role = origin")
        driver.commit()
    finally:
        driver.close()
    return job_id, seq


def test_a_job_deleted_without_its_history_is_caught_at_its_seq_not_raised(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    job_id, seq = delete_job_keeping_its_history(archive)
    found = failures(archive, log)
    assert set(found) == {"record", "current"}
    assert found["record"] == f"seq {seq} (job_history): raw_sha256: its JSON is missing" + (
        " (neither it nor a row of jobs holds it)"
    )
    assert found["current"] == f"job {job_id}: it has history rows but no row in jobs (deleted?)"


def test_the_readme_auditors_script_catches_a_job_deleted_without_its_history(
    archived: tuple[Archive, Path], tmp_path: Path
) -> None:
    archive, log = archived
    script = tmp_path / "audit.py"
    script.write_text(readme_block("auditor's script"))
    _, seq = delete_job_keeping_its_history(archive)
    bad = run_cli_script(script, auditor_target(archive), log)
    assert (bad.returncode, bad.stderr) == (1, f"broken at seq {seq}\n")


def auditor_target(archive: Archive) -> str:
    url = archive.url.render_as_string(hide_password=False).replace("+psycopg", "")
    return url.removeprefix("sqlite:///")


def history_json(archive: Archive, job_id: str) -> list[str]:
    with archive.engine().connect() as conn:
        query = sa.select(chain.history_raw()).where(job_history.c.job_id == job_id)
        return conn.execute(query.order_by(job_history.c.id)).scalars().all()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL's bigint refuses it
def test_an_infinity_written_into_an_integer_column_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    sql(  # where it was NULL: orjson writes an infinity as null
        archive,
        "UPDATE jobs SET trained_tokens = 9e999"
        " WHERE id = (SELECT min(id) FROM jobs WHERE trained_tokens IS NULL)",
    )
    found = failures(archive, log)
    assert set(found) == {"current"}
    assert "trained_tokens is inf" in found["current"]


def test_integrations_that_are_numbers_verify_intact(db_url: str, fake: FakeApi, base_url: str) -> None:
    fake.jobs = make_jobs(6, seed=2)
    fake.jobs[2]["integrations"] = [2.0]  # SQLite reads a JSON column's 2.0 back as 2
    fake.jobs[3]["integrations"] = [1e16]
    with Archive(db_url) as archive:
        archive.sync(Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url), details=False)
        verdict = archive.verify()
    assert verdict.first == {} and verdict.jobs == 6


def test_forging_an_error_row_for_a_job_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    sql(
        archive,
        "INSERT INTO errors (job_id, code, message) SELECT min(id), 'x', 'forged' FROM jobs"
        " WHERE id NOT IN (SELECT job_id FROM errors)",
    )
    assert set(failures(archive, log)) == {"current"}


def test_editing_or_deleting_a_jobs_metric_summary_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, _ = archived
    job_id = sql(archive, "SELECT job_id FROM job_metric_summary ORDER BY job_id LIMIT 1").scalar_one()
    differs = {"current": f"job {job_id}: job_metric_summary is not what its metric rows sum up to"}
    sql(archive, "UPDATE job_metric_summary SET best_valid_loss = -1 WHERE job_id = :j", j=job_id)
    assert failures(archive) == differs
    sql(archive, "DELETE FROM job_metric_summary WHERE job_id = :j", j=job_id)
    assert failures(archive) == differs


def test_a_metric_summary_forged_for_a_job_without_details_is_caught(
    archived: tuple[Archive, Path], fake: FakeApi, base_url: str
) -> None:
    archive, log = archived
    running = {**make_jobs(1, seed=99)[0], "id": "ftjob-running", "status": "running", "finished_at": None}
    fake.jobs.insert(0, running)
    archive.sync(Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url), checkpoint_log=log)
    sql(archive, "INSERT INTO job_metric_summary (job_id, steps, final_step) VALUES ('ftjob-running', 1, 1)")
    alone = "job ftjob-running: job_metric_summary holds a job without a details record"
    assert failures(archive) == {"current": alone}


def test_deleting_a_history_row_is_caught_as_a_gap_and_a_broken_link(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    seq = seq_of(archive, older)
    sql(archive, "DELETE FROM job_history WHERE id = :id", id=older)
    found = failures(archive, log)
    assert set(found) == {"gap", "link"}
    assert found["gap"] == f"seq {seq + 1} (job_history): seq {seq} to {seq} missing"


def test_inserting_a_history_row_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    columns = "job_id, sync_run_id, observed_at, status, content_hash, raw, observed_via"
    sql(
        archive,
        f"INSERT INTO job_history ({columns}) SELECT {columns} FROM job_history WHERE id = :id",
        id=older,
    )
    assert set(failures(archive, log)) == {"unchained", "current"}  # outside the chain, and now the newest


def test_inserting_a_row_that_copies_a_link_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    older, _ = newest_and_older(archive)
    columns = "job_id, sync_run_id, observed_at, status, content_hash, raw, observed_via, seq, record, hash"
    sql(
        archive,
        f"INSERT INTO job_history ({columns}) SELECT {columns} FROM job_history WHERE id = :id",
        id=older,
    )
    assert {"gap", "link"} <= set(failures(archive, log))


def test_swapping_two_history_rows_is_caught(archived: tuple[Archive, Path]) -> None:
    archive, log = archived
    with archive.engine().connect() as conn:
        a, b = conn.execute(sa.select(job_history.c.id).order_by(job_history.c.id).limit(2)).scalars()
    sql(
        archive,
        "UPDATE job_history SET job_id = CASE"
        " WHEN id = :a THEN (SELECT job_id FROM job_history WHERE id = :b)"
        " ELSE (SELECT job_id FROM job_history WHERE id = :a) END WHERE id IN (:a, :b)",
        a=a,
        b=b,
    )
    assert "record" in failures(archive, log)


def test_deleting_the_newest_links_is_caught_by_the_head_and_by_the_log(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    sql(archive, "DELETE FROM sync_runs WHERE id = (SELECT max(id) FROM sync_runs)")
    assert set(failures(archive, log)) == {"head", "checkpoint"}
    with archive.engine().connect() as conn:  # the insider fixes the head too: only the log is left
        last = conn.execute(
            sa.select(sync_runs.c.seq, sync_runs.c.hash).order_by(sync_runs.c.id.desc())
        ).first()
    sql(archive, "UPDATE chain_head SET seq = :s, hash = :h", s=last.seq, h=last.hash)
    assert set(failures(archive)) == set()
    assert set(failures(archive, log)) == {"checkpoint"}
    assert "lies beyond the chain's end" in failures(archive, log)["checkpoint"]


def rechain(archive: Archive) -> None:
    """What an insider with the code can do: rebuild every link over the rows as they now are."""
    with archive.engine(write=True).begin() as conn:
        for table in (job_history, sync_runs):
            conn.execute(sa.update(table).values(seq=None, record=None, hash=None))
        conn.execute(sa.text("DELETE FROM detail_history"))
        conn.execute(sa.update(chain_head).values(seq=0, hash=chain.GENESIS))
        chain.rebuild(conn)


def test_a_consistent_rewrite_is_caught_only_against_the_log_kept_elsewhere(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    _, newest = newest_and_older(archive)
    with archive.engine().connect() as conn:
        job_id, text = conn.execute(
            sa.select(job_history.c.job_id, chain.history_raw()).where(job_history.c.id == newest)
        ).one()
    raw = json.loads(text)
    raw["status"] = "cancelled"
    forged = json.dumps(raw)
    sql(
        archive,
        "UPDATE job_history SET raw = :raw, status = 'cancelled' WHERE id = :id",
        raw=forged,
        id=newest,
    )
    sql(archive, "UPDATE jobs SET raw = :raw, status = 'cancelled' WHERE id = :id", raw=forged, id=job_id)
    with archive.engine(write=True).begin() as conn:  # the typed columns and hashes rewritten to match
        from archiver import normalize, store

        canon = normalize.job(raw, normalize.Notes(), "openai")
        h = store.content_hash(raw, "openai")
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(status_class=canon["status_class"], content_hash=h, provider="openai")
        )
        conn.execute(sa.update(job_history).where(job_history.c.id == newest).values(content_hash=h))
    rechain(archive)
    assert failures(archive) == {}  # nothing inside the archive can tell
    found = failures(archive, log)
    assert set(found) == {"checkpoint"}
    assert "the chain" in found["checkpoint"]


def test_checkpoints_signed_with_another_key_fail(
    db_url: str, fake: FakeApi, base_url: str, tmp_path: Path
) -> None:
    private, public = write_keys(tmp_path)
    _, stranger = write_keys(tmp_path, "stranger")
    log = tmp_path / "signed.log"
    with Archive(db_url) as archive:
        history(fake, archive, base_url, log, private)
        assert failures(archive, log, public) == {}
        found = failures(archive, log, stranger)
    assert set(found) == {"signature"}
    assert "is not signed by the public key" in found["signature"]


def test_the_readme_auditors_script_checks_the_chain_without_archiver(
    archived: tuple[Archive, Path], tmp_path: Path
) -> None:
    archive, log = archived
    script = tmp_path / "audit.py"
    script.write_text(readme_block("auditor's script"))
    target = auditor_target(archive)
    ok = run_cli_script(script, target, log)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("chain intact: ")
    older, _ = newest_and_older(archive)
    sql(archive, "UPDATE job_history SET raw = :raw WHERE id = :id", raw='{"id": "forged"}', id=older)
    bad = run_cli_script(script, target, log)
    assert bad.returncode == 1
    assert bad.stderr == f"broken at seq {seq_of(archive, older)}\n"


def readme_block(title: str) -> str:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    after = text[text.index(title) :]
    return after[
        after.index("```python\n") + len("```python\n") : after.index("\n```", after.index("```python"))
    ]


def run_cli_script(script: Path, target: str, log: Path) -> Any:
    return subprocess.run(
        [sys.executable, str(script), target, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_verify_command_prints_the_first_failure_and_exits_6(
    archived: tuple[Archive, Path], base_url: str
) -> None:
    archive, log = archived
    env = cli_env(base_url)
    url = archive.url.render_as_string(hide_password=False)
    ok = run_cli("verify", "--db", url, "--checkpoints", str(log), env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("INTACT: ")
    sql(archive, "UPDATE jobs SET model = 'forged' WHERE id = (SELECT min(id) FROM jobs)")
    bad = run_cli("verify", "--db", url, "--checkpoints", str(log), "--json", env=env)
    assert bad.returncode == 6, bad.stderr
    verdict = json.loads(bad.stdout)
    assert verdict["intact"] is False
    assert [f["kind"] for f in verdict["failures"]] == ["current"]
    status = run_cli("status", "--db", url, env=env)
    assert "Last verify: NOT INTACT" in status.stdout


def test_sync_json_prints_the_checkpoint_it_appended(
    db_url: str, fake: FakeApi, base_url: str, tmp_path: Path
) -> None:
    fake.jobs = make_jobs(5, seed=3)
    log = tmp_path / "cp.log"
    private, public = write_keys(tmp_path)
    env = cli_env(base_url, ARCHIVER_CHECKPOINT_LOG=str(log), ARCHIVER_SIGNING_KEY=str(private))
    done = run_cli("sync", "--db", db_url, "--json", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)["checkpoint"]
    assert json.loads(log.read_text()) == printed
    assert printed["seq"] == 6 and printed["signature"]
    status = run_cli("status", "--db", db_url, env=env)
    assert f"Last checkpoint: seq 6 ({printed['hash'][:16]}...)" in status.stdout
    checked = run_cli(
        "verify", "--db", db_url, "--checkpoints", str(log), "--public-key", str(public), env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_signing_key_that_is_not_one_is_refused_before_the_run(
    db_url: str, base_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello")
    done = run_cli("sync", "--db", db_url, "--signing-key", str(bad), env=cli_env(base_url))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"archiver: error: {bad} is not a PEM key (make one: openssl genpkey -algorithm ed25519)"
    )


def test_the_dashboard_shows_the_last_checkpoint_and_the_last_verify(
    archived: tuple[Archive, Path],
) -> None:
    archive, log = archived
    verdict = archive.verify(log)
    page = archive.read(dashboard.render)
    head = archive.read(chain.head)
    assert f'<p class="audit">Last checkpoint: seq {verdict.last_seq:,} ({head[2][:16]}...)' in page
    assert f'<p class="audit">Last verify: INTACT, {verdict.rows:,} links, ' in page
