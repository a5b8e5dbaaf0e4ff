"""`verify` on two processes (archiver/verify_split.py) says what it says on one, on SQLite and
PostgreSQL, tampered or not; a sync that commits between the two processes' snapshots is handled."""

import logging
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver import Archive, Portkey, verify_split
from archiver.verify import verify
from tests.fake_api import API_KEY, VIRTUAL_KEY, FakeApi, add_new_jobs
from tests.test_audit import history, newest_and_older, sql

SPLIT = "the current rows were checked in a second process"
HERE = "checking the current rows here"


KINDS = {  # what verify finds on one process
    "untouched": [],
    "typed_column_edited": ["current"],
    "error_row_forged": ["current"],
    "newest_history_json_edited": ["record", "current"],
    "a_value_not_utf8": ["current"],
}


def untouched(archive: Archive) -> None:
    pass


def typed_column_edited(archive: Archive) -> None:
    sql(archive, "UPDATE jobs SET trained_tokens = 12345 WHERE id = (SELECT max(id) FROM jobs)")


def error_row_forged(archive: Archive) -> None:
    job = sql(archive, "SELECT min(id) FROM jobs WHERE id NOT IN (SELECT job_id FROM errors)").scalar()
    sql(archive, "INSERT INTO errors (job_id, code, message, param) VALUES (:j, 'x', 'forged', NULL)", j=job)


def a_value_not_utf8(archive: Archive) -> None:  # SQLite: read again, tolerant (verify_split.fast_reads)
    sql(archive, "UPDATE jobs SET model = CAST(X'6d6fff' AS TEXT) WHERE id = (SELECT max(id) FROM jobs)")


def newest_history_json_edited(archive: Archive) -> None:
    _, newest = newest_and_older(archive)
    sql(archive, "UPDATE job_history SET raw = :raw WHERE id = :id", raw='{"id": "forged"}', id=newest)


TAMPERS = [untouched, typed_column_edited, error_row_forged, newest_history_json_edited, a_value_not_utf8]


@pytest.mark.parametrize("tamper", TAMPERS)
def test_a_verdict_on_two_processes_is_the_verdict_on_one(
    db_url: str,
    fake: FakeApi,
    base_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tamper: Callable[[Archive], None],
) -> None:
    archive = Archive(db_url)
    log = tmp_path / "checkpoints.log"
    history(fake, archive, base_url, log)
    tamper(archive)
    one = archive.verify(log).as_dict()
    assert one["jobs"] == 28
    assert [f["kind"] for f in one["failures"]] == KINDS[tamper.__name__]
    monkeypatch.setattr(verify_split, "SPLIT_FROM", 0)
    with caplog.at_level(logging.INFO, logger="archiver.verify_split"):
        two = archive.verify(log).as_dict()
    assert SPLIT in caplog.text and HERE not in caplog.text
    assert two == one
    archive.close()


def test_a_sync_between_the_two_snapshots_leaves_the_verdict_that_of_the_first(
    db_url: str,
    fake: FakeApi,
    base_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first process has read its snapshot; a sync then writes new jobs before the second
    process starts. PostgreSQL: the second imports the first's snapshot and checks the same jobs.
    SQLite: the second's snapshot has another chain head, so the first checks the rows itself."""
    archive = Archive(db_url)
    history(fake, archive, base_url, tmp_path / "checkpoints.log")
    monkeypatch.setattr(verify_split, "SPLIT_FROM", 0)
    engine = archive.engine()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            before = conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
            add_new_jobs(fake.jobs, 5, random.Random(9))
            archive.sync(Portkey(api_key=API_KEY, virtual_key=VIRTUAL_KEY, base_url=base_url))
            with caplog.at_level(logging.INFO, logger="archiver.verify_split"):
                verdict = verify(conn, url=archive.engine(write=True).url)
    assert verdict.intact and verdict.jobs == before
    if engine.dialect.name == "postgresql":
        assert SPLIT in caplog.text and HERE not in caplog.text
    else:
        assert "a sync committed between verify's two snapshots" in caplog.text
    assert archive.verify().jobs == before + 5
    archive.close()
