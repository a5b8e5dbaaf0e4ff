"""The dashboard from a real archive: its numbers against the served jobs on SQLite and PostgreSQL, and
the page drawn by headless Chromium (installed here when missing), every chart with its marks."""

import fcntl
import html
import json
import math
import os
import random
import re
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import charts, dashboard, db
from archiver.errors import ApiError
from archiver.normalize import status_class
from archiver.sync import sync
from tests.fake_api import FakeApi, add_new_jobs, make_jobs
from tests.test_sync import api_for

CHROMIUM = Path("/usr/bin/chromium")
KEYS = ["jobs_per_month", "durations", "failures", "tokens", "in_flight", "sync_health", "coverage"]
DETAIL_KEYS = ["loss_curves", "best_vs_final"]  # empty here: tests/test_detail_dashboard.py draws them
SCRIPT_CODE = "</script><script>alert(1)</script>"  # an error code that must stay text
NOW = 1_790_000_000 + 48 * 3600  # after the newest job


def fill(engine: sa.Engine) -> list[dict[str, Any]]:
    """Three runs: a full sync, a full sync after 20 jobs left the API (they vanish), and a run cut off
    by an outage after one page of 250 new jobs (a failed run and an open gap). Returns the jobs archived."""
    jobs = make_jobs(400, seed=7)
    jobs[10].update(status="failed", error={"code": SCRIPT_CODE, "message": "<b>bold</b>", "param": None})
    jobs[10].update(finished_at=jobs[10]["created_at"] + 1000, fine_tuned_model=None, trained_tokens=None)
    fake = FakeApi(jobs)
    sync(api_for(fake), engine, limit=100, provider="openai")
    archived = [dict(j) for j in fake.jobs]
    del fake.jobs[200:220]
    sync(api_for(fake), engine, full=True, limit=100, provider="openai")
    add_new_jobs(fake.jobs, 250, random.Random(1))
    fake.outage_after = fake.pages_served + 1
    with pytest.raises(ApiError):
        sync(api_for(fake), engine, limit=100, provider="openai")
    return archived + fake.jobs[:100]


def month(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-01")


def payloads(page: str) -> dict[str, dict[str, Any]]:
    """Each chart's plotly spec as embedded in the page, by chart key."""
    found = re.findall(
        r'<section data-chart="(\w+)"[^>]*>.*?<script type="application/json">(.*?)</script>', page
    )
    return {key: json.loads(spec) for key, spec in found}


def series(spec: dict[str, Any], horizontal: bool = False) -> dict[str, dict[Any, Any]]:
    return {
        t["name"]: dict(zip(t["y"], t["x"], strict=True) if horizontal else zip(t["x"], t["y"], strict=True))
        for t in spec["data"]
        if t["type"] == "bar"
    }


def nearest_rank(values: list[int], p: float) -> int:
    return sorted(values)[math.ceil(p * len(values)) - 1]


def expected_charts(archived: list[dict[str, Any]]) -> dict[str, Any]:
    """What each chart must show, computed from the jobs as served, independently of the SQL."""
    per_month: dict[str, Counter[str]] = defaultdict(Counter)
    tokens: dict[str, Counter[str]] = defaultdict(Counter)
    failures: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j in archived:
        cls = status_class(j["status"])
        per_month[cls][month(j["created_at"])] += 1
        if j["trained_tokens"] is not None:
            tokens[j["model"]][month(j["created_at"])] += j["trained_tokens"]
        if cls == "failed":
            failures[j["model"]][(j.get("error") or {}).get("code") or "(no code)"] += 1
        if j["finished_at"] is not None:
            durations[(j["model"], cls)].append(j["finished_at"] - j["created_at"])
    boxes = {
        key: [min(d) / 60, *(nearest_rank(d, p) / 60 for p in (0.25, 0.5, 0.75)), max(d) / 60]
        for key, d in durations.items()
    }
    moving = sorted(
        (j for j in archived if status_class(j["status"]) in ("queued", "running")),
        key=lambda j: j["created_at"],
    )
    return {
        "jobs_per_month": {k: dict(v) for k, v in per_month.items()},
        "tokens": {k: dict(v) for k, v in tokens.items()},
        "failures": {k: dict(v) for k, v in failures.items()},
        "durations": boxes,
        "in_flight": [j["id"] for j in moving],
    }


def test_dashboard_shows_what_the_archive_holds(engine: sa.Engine) -> None:
    archived = fill(engine)
    with engine.connect() as conn:
        page = dashboard.render(conn, now=NOW)
    specs = payloads(page)
    assert list(specs) == KEYS
    want = expected_charts(archived)
    assert series(specs["jobs_per_month"]) == want["jobs_per_month"]
    assert series(specs["tokens"]) == want["tokens"]
    assert series(specs["failures"], horizontal=True) == want["failures"]
    boxes = {
        (model, t["name"]): [t[k][i] for k in ("lowerfence", "q1", "median", "q3", "upperfence")]
        for t in specs["durations"]["data"]
        for i, model in enumerate(t["x"])
    }
    assert boxes == want["durations"]
    assert sorted(y for t in specs["in_flight"]["data"] for y in t["y"]) == sorted(want["in_flight"])
    in_flight_card = page.split('<section data-chart="in_flight"')[1].split("</section>")[0]
    assert re.findall(r"<tr><td>(ftjob-[^<]*)</td>", in_flight_card) == want["in_flight"]  # oldest first
    vanished = {month(j["created_at"]) for j in archived[200:220]}
    coverage = series(specs["coverage"])
    assert sum(coverage["vanished"].values()) == 20 and set(coverage["vanished"]) == vanished
    assert sum(coverage["listed"].values()) == len(archived) - 20
    with engine.connect() as conn:
        requests = conn.execute(sa.text("SELECT sum(requests) FROM sync_runs")).scalar_one()
    [runs_line] = [t for t in specs["sync_health"]["data"] if t["type"] == "scatter"]
    assert sum(runs_line["y"]) == requests
    assert {name: sum(v.values()) for name, v in series(specs["sync_health"]).items()} == {
        "failed runs": 1,
        "succeeded runs": 2,
    }
    tiles = dict((v, k) for k, v in re.findall(r"<div><b>(.*?)</b><span>(.*?)</span></div>", page))
    assert tiles["jobs archived"] == f"{len(archived):,}"
    assert tiles["in flight"] == str(len(want["in_flight"]))
    assert tiles["vanished jobs"] == "20"
    assert tiles["open gaps"] == "1 (0 blocked)"
    assert SCRIPT_CODE not in page  # in the chart's JSON, escaped so that it cannot end the script
    assert json.dumps(SCRIPT_CODE).replace("<", "\\u003c").replace(">", "\\u003e") in page


def test_an_empty_archive_renders_with_nothing_to_draw(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        page = dashboard.render(conn, now=NOW)
    assert payloads(page) == {}
    assert page.count("Nothing to show yet.") == len(KEYS + DETAIL_KEYS)
    assert "<b>never</b><span>last sync</span>" in page


def test_render_table_is_a_standalone_escaped_page() -> None:
    page = dashboard.render_table("failure_reasons", ["code", "jobs"], [("<i>x</i> & y", 3), (None, 1.5)])
    assert page.startswith("<!DOCTYPE html>")
    assert "<th>code</th><th>jobs</th>" in page
    assert "<tr><td>&lt;i&gt;x&lt;/i&gt; &amp; y</td><td>3</td></tr><tr><td></td><td>1.5</td></tr>" in page
    assert "<title>failure_reasons</title>" in page and "<p>2 rows</p>" in page
    assert "<script src" not in page and "<link" not in page


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (as root); the test fails without it."""
    if not CHROMIUM.exists() and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with open("/tmp/archiver-apt.lock", "w") as lock:  # xdist workers take turns with dpkg
            fcntl.flock(lock, fcntl.LOCK_EX)
            for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
                if not CHROMIUM.exists():
                    subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    if not CHROMIUM.exists():
        pytest.fail("headless Chromium is needed: apt-get install chromium (as root)")
    return CHROMIUM


def open_in_chromium(chromium: Path, page: Path, tmp_path: Path, *args: str) -> str:
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=20000",  # lets the page's scripts finish before the DOM is read
        "--window-size=1400,3000",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


BAR = re.compile(r'<g class="point"><path d="M([\d.]+),([\d.]+)V([\d.]+)H([\d.]+)V[\d.]+Z"')
MARKER_OR_BOX = re.compile(r'<path class="point" transform|<path class="box" d="M')


def marks(section: str, horizontal: bool) -> int:
    """The bars at least 2 px thick, the markers and the boxes that plotly drew in one chart's SVG."""
    bars = [(float(x1) - float(x0), float(y1) - float(y0)) for x0, y0, y1, x1 in BAR.findall(section)]
    thick = [b for b in bars if abs(b[1] if horizontal else b[0]) >= 2]
    return len(thick) + len(MARKER_OR_BOX.findall(section))


@pytest.mark.timeout(900)  # the first run may install chromium
def test_chromium_draws_every_chart_without_errors(chromium: Path, tmp_path: Path) -> None:
    engine = db.make_engine(db.parse_url(str(tmp_path / "archive.db")))
    db.upgrade(engine)
    fill(engine)
    with engine.connect() as conn:
        page = dashboard.render(conn, now=NOW)
    engine.dispose()
    path = tmp_path / "archive.html"
    path.write_text(page)
    dom = open_in_chromium(chromium, path, tmp_path, "--dump-dom")
    assert '<html lang="en" data-rendered="ok">' in dom, re.findall(r"data-errors=\"[^\"]*\"", dom)
    assert "data-errors" not in dom
    sections = dict(re.findall(r'<section data-chart="(\w+)"[^>]*>(.*?)</section>', dom, re.S))
    assert list(sections) == KEYS + DETAIL_KEYS
    for key, spec in payloads(page).items():
        points = sum(len(t.get("x") or []) for t in spec["data"])  # one mark per bar, box or marker
        horizontal = any(t.get("orientation") == "h" for t in spec["data"])
        assert marks(sections[key], horizontal) == points, key
        assert "<svg" in sections[key] and 'class="legend"' in sections[key], key
    assert html.escape(SCRIPT_CODE) in dom  # drawn as an axis label, not run
    shot = tmp_path / "archive.png"
    open_in_chromium(chromium, path, tmp_path, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 100_000


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_no_model_colour_is_or_is_near_a_colour_that_means_a_status() -> None:
    """A colour that means "succeeded" in one chart must not mean a model in the next."""
    for model_colour in charts.PALETTE:
        for meaning, status_colour in charts.COLORS.items():
            distance = math.dist(rgb(model_colour), rgb(status_colour))
            assert distance >= 60, (model_colour, meaning, status_colour, distance)


def test_an_archive_whose_only_sync_failed_says_so_and_shows_why(engine: sa.Engine) -> None:
    fake = FakeApi(make_jobs(30))
    fake.outage_after = 0
    with pytest.raises(ApiError) as failure:
        sync(api_for(fake, max_retries=0), engine)
    with engine.connect() as conn:
        page = dashboard.render(conn, now=NOW)
    assert "every part of the job listing has been walked" not in page
    assert "No sync has succeeded yet: the job listing has not been walked to its end." in page
    assert html.escape(f"failed: {failure.value}") in page and '<p class="alert">The last sync (' in page


@pytest.mark.timeout(900)  # the first run may install chromium
def test_chromium_shows_the_in_flight_table_whole(chromium: Path, tmp_path: Path) -> None:
    """Seven columns of jobs in flight, with their ids, models and times, are not cut off by the card."""
    engine = db.make_engine(db.parse_url(str(tmp_path / "archive.db")))
    db.upgrade(engine)
    jobs = make_jobs(60, seed=9)
    for job in jobs[:20]:
        job.update(status="running", finished_at=None, estimated_finish=job["created_at"] + 7200)
        job.update(model="ft:gpt-4o-mini-2024-07-18:research-org:long-suffix:AbCdEf12")
    sync(api_for(FakeApi(jobs)), engine, provider="openai")
    with engine.connect() as conn:
        page = dashboard.render(conn, now=NOW)
    engine.dispose()
    path = tmp_path / "archive.html"
    path.write_text(page)
    dom = open_in_chromium(chromium, path, tmp_path, "--dump-dom")
    assert '<html lang="en" data-rendered="ok">' in dom, re.findall(r"data-errors=\"[^\"]*\"", dom)
