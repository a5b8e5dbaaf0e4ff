"""A job's details (events, checkpoints, files, result metrics) archived by sync, on SQLite and PostgreSQL."""

from typing import Any

import sqlalchemy as sa

from archiver.detail_models import job_details
from archiver.details import DetailOptions
from archiver.fake_details import add_details
from archiver.sync import sync
from tests.conftest import assert_archive_equals
from tests.details_oracle import assert_details_equal, final_jobs, read_details
from tests.fake_api import FakeApi, finish_job, make_jobs
from tests.test_sync import api_for

ON = DetailOptions()


def final_fake(n: int, seed: int) -> tuple[FakeApi, dict[str, list[dict[str, Any]]]]:
    """A history of final jobs only, with their details; events paged 3 at a time."""
    jobs = make_jobs(n, seed=seed)
    for job in jobs[:5]:
        finish_job(job)
    fake = FakeApi(jobs)
    fake.detail_max_limit = 3
    return fake, add_details(fake, seed=seed)


def detail_requests(fake: FakeApi) -> list[str]:
    return [r.path for r in fake.requests if not r.path.endswith("/fine_tuning/jobs")]


def states(engine: sa.Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(job_details.c.job_id, job_details.c.state, job_details.c.error))
        return {job_id: (state, error) for job_id, state, error in rows}


def test_sync_archives_every_final_jobs_details_exactly_as_served(engine: sa.Engine) -> None:
    fake, metrics = final_fake(40, seed=1)
    result = sync(api_for(fake), engine, details=ON, limit=50)
    assert_archive_equals(engine, fake.jobs)
    assert_details_equal(engine, fake, metrics)
    assert result.details is not None
    assert (result.details.total, result.details.done, result.details.retry, result.details.left) == (
        40,
        40,
        0,
        0,
    )
    pages = [r for r in detail_requests(fake) if r.endswith("/events")]
    assert len(pages) > 40  # events came in pages of 3: more than one page per job


def test_second_sync_after_details_sends_one_request(engine: sa.Engine) -> None:
    fake, _metrics = final_fake(30, seed=2)
    sync(api_for(fake), engine, details=ON)
    before = read_details(engine)
    fake.requests.clear()
    result = sync(api_for(fake), engine, details=ON)
    assert result.requests == 1
    assert [r.path for r in fake.requests] == ["/v1/fine_tuning/jobs"]
    assert read_details(engine) == before


def test_requests_per_job_are_events_checkpoints_and_each_file_once(engine: sa.Engine) -> None:
    fake, metrics = final_fake(12, seed=3)
    shared = fake.jobs[0]["training_file"]
    for job in fake.jobs:
        job["training_file"] = shared  # many jobs train on one file
    fake.detail_max_limit = None
    sync(api_for(fake), engine, details=ON)
    assert_details_equal(engine, fake, metrics)
    paths = detail_requests(fake)
    files = {j.get("validation_file") for j in fake.jobs} | {shared}
    results = {f for j in fake.jobs for f in j["result_files"]}
    expected = (
        [f"/v1/fine_tuning/jobs/{j['id']}/{kind}" for j in fake.jobs for kind in ("events", "checkpoints")]
        + [f"/v1/files/{f}" for f in (files | results) - {None}]
        + [f"/v1/files/{f}/content" for f in results]
    )
    assert sorted(paths) == sorted(expected)


def test_in_flight_jobs_get_their_details_once_final(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(20, seed=4))
    metrics = add_details(fake, seed=4)
    moving = [j for j in fake.jobs if j["status"] not in ("succeeded", "failed", "cancelled")]
    assert moving
    sync(api_for(fake), engine, details=ON)
    asked = {r.path.split("/")[-2] for r in fake.requests if r.path.endswith("/events")}
    assert asked == {j["id"] for j in final_jobs(fake)}
    for job in moving:
        finish_job(job)
    metrics |= add_details(fake, seed=4, only={j["id"] for j in moving})
    fake.requests.clear()
    sync(api_for(fake), engine, details=ON)
    asked = {r.path.split("/")[-2] for r in fake.requests if r.path.endswith("/events")}
    assert asked == {j["id"] for j in moving}
    assert_details_equal(engine, fake, metrics)


def test_details_gone_upstream_are_kept_and_never_asked_again(engine: sa.Engine) -> None:
    fake, _metrics = final_fake(10, seed=5)
    sync(api_for(fake), engine, details=ON)
    before = read_details(engine)
    for served in (fake.events, fake.checkpoints, fake.files, fake.contents):
        served.clear()
    fake.requests.clear()
    sync(api_for(fake), engine, details=ON, full=True)
    assert read_details(engine) == before
    assert detail_requests(fake) == []


def test_a_file_gone_upstream_is_recorded_and_the_rest_archived(engine: sa.Engine) -> None:
    fake, _metrics = final_fake(6, seed=6)
    job = next(j for j in fake.jobs if j["result_files"])
    result_id = job["result_files"][0]
    del fake.files[job["training_file"]], fake.contents[result_id]
    fake.detail_max_limit = None  # one page each: every request below is for another detail
    sync(api_for(fake), engine, details=ON)
    with engine.connect() as conn:
        meta = conn.execute(
            sa.text("SELECT raw, missing FROM files WHERE id = :i"), {"i": job["training_file"]}
        ).one()
        content = conn.execute(
            sa.text("SELECT content, note FROM file_contents WHERE file_id = :i"), {"i": result_id}
        ).one()
        metrics_left = conn.execute(
            sa.text("SELECT count(*) FROM job_metrics WHERE file_id = :i"), {"i": result_id}
        ).scalar_one()
    assert tuple(meta) == (None, "gone upstream (404)")
    assert tuple(content) == (None, "gone upstream (404)")
    assert metrics_left == 0
    assert states(engine)[job["id"]] == ("done", None)
    assert len(detail_requests(fake)) == len(set(detail_requests(fake)))


def test_a_route_without_details_is_recorded_once_and_never_asked(engine: sa.Engine) -> None:
    fake, _ = final_fake(8, seed=7)
    fake.provider = "fireworks-ai"
    result = sync(api_for(fake), engine, details=ON)
    assert detail_requests(fake) == []
    assert result.details is not None and result.details.unsupported == 8
    assert {s for s, _ in states(engine).values()} == {"unsupported"}
    assert all("Fireworks" in (e or "") for _, e in states(engine).values())
    fake.requests.clear()
    assert sync(api_for(fake), engine, details=ON).requests == 1


def test_a_result_file_over_the_size_cap_is_recorded_not_kept(engine: sa.Engine) -> None:
    fake, _ = final_fake(4, seed=8)
    job = next(j for j in fake.jobs if j["result_files"])
    file_id = job["result_files"][0]
    size = len(fake.contents[file_id])
    sync(api_for(fake), engine, details=DetailOptions(max_bytes=size - 1))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT content, size, sha256, note FROM file_contents WHERE file_id = :i"),
            {"i": file_id},
        ).one()
    cap = f"{(size - 1) / 1e6:g} MB"
    assert tuple(row) == (
        None,
        size,
        None,
        f"{size:,} bytes, over the {cap} cap (--details-max-bytes): not kept",
    )
    assert states(engine)[job["id"]] == ("done", None)


def test_unreadable_events_checkpoints_and_result_rows_are_kept_raw_with_why(engine: sa.Engine) -> None:
    fake, _ = final_fake(3, seed=9)
    job = next(j for j in fake.jobs if j["result_files"])
    fake.events[job["id"]].append("not an event")
    fake.checkpoints[job["id"]].append({"step_number": 3})
    file_id = job["result_files"][0]
    fake.contents[file_id] = b"step,train_loss,mystery\n1,0.5,7\n2,oops,1\n2,0.4,\n3,0.3\n"
    sync(api_for(fake), engine, details=ON)
    with engine.connect() as conn:
        rejects = conn.execute(
            sa.text("SELECT kind, file_id, line, reason, raw FROM rejected_details ORDER BY kind, line")
        ).all()
        kept = conn.execute(
            sa.text("SELECT step, metric, value FROM job_metrics WHERE file_id = :i ORDER BY step, metric"),
            {"i": file_id},
        ).all()
    assert [tuple(r) for r in rejects] == [
        ("checkpoint", None, None, "no id, or an id that is not text", '{"step_number": 3}'),
        ("event", None, None, "not a JSON object", '"not an event"'),
        ("result_row", file_id, 3, "train_loss 'oops' is not a finite number", "2,oops,1"),
        ("result_row", file_id, 5, "2 cells where the header has 3", "3,0.3"),
    ]
    assert [tuple(r) for r in kept] == [(1, "mystery", 7.0), (1, "train_loss", 0.5), (2, "train_loss", 0.4)]
    assert states(engine)[job["id"]] == ("done", None)


def test_0010_down_keeps_the_jobs_and_up_again_lets_a_sync_refetch_the_details(engine: sa.Engine) -> None:
    from archiver import db
    from tests.conftest import read_archive

    fake, metrics = final_fake(15, seed=10)
    sync(api_for(fake), engine, details=ON)
    jobs_before = read_archive(engine)
    db.downgrade(engine, "0007")
    assert not set(sa.inspect(engine).get_table_names()) & {"job_details", "job_metrics", "files"}
    assert read_archive(engine) == jobs_before
    db.upgrade(engine)
    assert read_details(engine) == {name: [] for name in read_details(engine)}
    sync(api_for(fake), engine, details=ON)
    assert_details_equal(engine, fake, metrics)
    assert read_archive(engine) == jobs_before
