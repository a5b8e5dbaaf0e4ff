"""The Datasette metadata against a real archive, served by Datasette's own test client."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from datasette.app import Datasette

from archiver import db, reports
from archiver.datasette import metadata
from archiver.details import DetailOptions
from archiver.fake_details import add_details
from archiver.sync import sync
from tests.fake_api import FakeApi, make_jobs
from tests.test_sync import api_for

TABLES = {"jobs", "errors", "result_files", "integrations", "tags", "job_history", "sync_runs", "sync_gaps"}
TABLES |= {"rejected_items", "alembic_version"}
VIEWS = {"job_summary", "job_history_fields", "sync_run_summary", "job_metric_steps", "job_final_metrics"}
TABLES |= {"job_details", "job_events", "job_checkpoints", "files", "file_contents", "job_metrics"}
TABLES |= {"rejected_details", "job_routes", "detail_history", "chain_head", "verify_runs"}
VIEWS |= {"audit_chain"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite archive of 300 jobs, synced from the fake: archive.db, so Datasette names it `archive`."""
    path = tmp_path_factory.mktemp("datasette") / "archive.db"
    engine = db.make_engine(db.parse_url(str(path)))
    db.upgrade(engine)
    fake = FakeApi(make_jobs(300, seed=3))
    add_details(fake, seed=3)
    sync(api_for(fake), engine, limit=100, provider="openai", details=DetailOptions())
    engine.dispose()
    return path


def get_all(path: Path, urls: list[str]) -> dict[str, tuple[int, Any]]:
    """GET each URL in one Datasette instance: url -> (status, parsed JSON or the HTML text)."""

    async def run() -> dict[str, tuple[int, Any]]:
        ds = Datasette([str(path)], metadata=metadata(path.stem))
        await ds.invoke_startup()
        out = {}
        for url in urls:
            response = await ds.client.get(url)
            body = response.json() if ".json" in url else response.text
            out[url] = (response.status_code, body)
        return out

    return asyncio.run(run())


def first_job_id(path: Path) -> str:
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        return str(conn.execute(sa.text("SELECT id FROM jobs ORDER BY created_at LIMIT 1")).scalar_one())


def test_every_canned_query_runs_with_no_input_and_returns_rows(archive: Path) -> None:
    job_id = first_job_id(archive)
    with sa.create_engine(f"sqlite:///{archive}").connect() as conn:
        trained, model = conn.execute(sa.text("SELECT job_id, model FROM job_final_metrics LIMIT 1")).one()
    given = {"job_timeline": f"&job_id={job_id}", "training_curve": f"&job_id={trained}"}
    given["model_comparison"] = f"&model={model}"
    urls = {name: f"/archive/{name}.json?_shape=objects" + given.get(name, "") for name in reports.names()}
    pages = [f"/archive/{name}" for name in reports.names()]  # the form and the table a person sees
    got = get_all(archive, list(urls.values()) + pages)
    for name, url in urls.items():
        status, body = got[url]
        assert status == 200, (name, body)
        assert body["rows"], f"canned query {name} returned no rows"
    assert all(got[page][0] == 200 for page in pages)
    in_flight = got[urls["in_flight"]][1]["rows"]
    assert len(in_flight) == 5
    assert {r["status"] for r in in_flight} <= {"validating_files", "queued", "running"}
    assert got[urls["status_overview"]][1]["rows"][0]["jobs"] > 100


def test_since_and_until_take_dates_from_the_form(archive: Path) -> None:
    base = "/archive/status_overview.json?_shape=objects"
    future, past, window = f"{base}&since=2099-01-01", f"{base}&until=2000-01-01", f"{base}&since=2026-09-21"
    got = get_all(archive, [base, future, past, window])
    total = sum(r["jobs"] for r in got[base][1]["rows"])
    assert total == 300
    assert got[future][1]["rows"] == []
    assert got[past][1]["rows"] == []
    assert 0 < sum(r["jobs"] for r in got[window][1]["rows"]) < 300  # jobs span 2026-09-19 to 21


def test_every_table_and_view_page_opens_with_its_facets(archive: Path) -> None:
    listing = get_all(archive, ["/archive.json"])["/archive.json"][1]
    tables = {t["name"] for t in listing["tables"]}
    views = {v["name"] for v in listing["views"]}
    assert tables >= TABLES
    assert views == VIEWS
    urls = [f"/archive/{name}" for name in sorted(tables | views)]
    urls += [f"/archive/{name}.json?_size=5" for name in sorted(tables | views)]
    got = get_all(archive, urls)
    for url, (status, body) in got.items():
        assert status == 200, (url, str(body)[:500])
    facets = got["/archive/jobs.json?_size=5"][1]["facet_results"]
    assert set(facets) == {"status", "status_class", "model", "provider"}
    assert {f["value"] for f in facets["provider"]["results"]} == {"openai"}
    summary_facets = got["/archive/job_summary.json?_size=5"][1]["facet_results"]
    assert set(summary_facets) == {"status", "status_class", "model", "provider"}
    assert set(got["/archive/sync_runs.json?_size=5"][1]["facet_results"]) == {"route", "status", "mode"}
    assert set(got["/archive/sync_run_summary.json?_size=5"][1]["facet_results"]) == {"status", "mode"}
    assert set(got["/archive/audit_chain.json?_size=5"][1]["facet_results"]) == {"table_name"}
    assert "The base model fine-tuned" in got["/archive/jobs"][1]  # column descriptions are shown


def test_metadata_describes_every_table_view_and_column(archive: Path) -> None:
    meta = metadata("archive")
    json.dumps(meta)  # what `archiver datasette-metadata` prints
    described = meta["databases"]["archive"]["tables"]
    inspector = sa.inspect(sa.create_engine(f"sqlite:///{archive}"))
    for name in inspector.get_table_names() + inspector.get_view_names():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert name in described and described[name]["description"], name
        assert set(described[name]["columns"]) == columns, name
        assert all(described[name]["columns"].values()), name
    queries = meta["databases"]["archive"]["queries"]
    assert set(queries) == set(reports.names())
    assert queries["durations"]["title"] == "Durations"
    assert queries["durations"]["params"] == ["since", "until"]
    assert queries["durations"]["description"].startswith("How long finished jobs took")
    assert queries["sync_health"]["params"] == ["since", "until", "route", "limit"]
    assert queries["in_flight"]["params"] == ["route"]
    assert ":_now_epoch" in queries["in_flight"]["sql"]
    assert queries["job_timeline"]["params"] == ["job_id"]
