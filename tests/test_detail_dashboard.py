"""The dashboard's loss curves and best-against-final validation loss, drawn by headless Chromium."""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from archiver import dashboard
from archiver.details import DetailOptions
from archiver.sync import sync
from tests.test_dashboard import chromium, open_in_chromium, payloads  # noqa: F401 (a fixture)
from tests.test_details import final_fake
from tests.test_sync import api_for

POINT = re.compile(r'<path class="point" transform')


def archived_with_details(engine: sa.Engine) -> list[str]:
    """An archive of 30 final jobs and their details; the ids of those with a result file, newest first."""
    fake, _ = final_fake(30, seed=50)
    sync(api_for(fake), engine, details=DetailOptions())
    return [j["id"] for j in fake.jobs if j["result_files"]]


def test_loss_curves_carry_the_recent_jobs_and_a_menu_to_pick_one(engine: sa.Engine) -> None:
    trained = archived_with_details(engine)
    with engine.connect() as conn:
        page = dashboard.render(conn)
        steps = conn.execute(
            sa.text("SELECT job_id, step, train_loss, valid_loss FROM job_metric_steps")
        ).all()
    spec = payloads(page)["loss_curves"]
    menu = spec["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"].split()[0] for b in menu] == trained[:12]
    for k, job_id in enumerate(trained[:12]):
        train, valid = spec["data"][2 * k : 2 * k + 2]
        mine = sorted((s, t, v) for j, s, t, v in steps if j == job_id)
        assert (train["x"], train["y"]) == (
            [s for s, t, _ in mine if t is not None],
            [t for _, t, _ in mine if t is not None],
        )
        assert (valid["x"], valid["y"]) == (
            [s for s, _, v in mine if v is not None],
            [v for _, _, v in mine if v is not None],
        )
        assert menu[k]["args"][0]["visible"] == [j // 2 == k for j in range(2 * len(menu))]
    assert [t["visible"] for t in spec["data"]] == [True, True] + [False] * (len(spec["data"]) - 2)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(900)  # the first run may install chromium
def test_chromium_draws_a_mark_for_every_point_of_the_shown_loss_curves(
    engine: sa.Engine,
    chromium: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    archived_with_details(engine)
    with engine.connect() as conn:
        page = dashboard.render(conn)
    path = tmp_path / "archive.html"
    path.write_text(page)
    dom = open_in_chromium(chromium, path, tmp_path, "--dump-dom")
    assert '<html lang="en" data-rendered="ok">' in dom, re.findall(r"data-errors=\"[^\"]*\"", dom)
    sections = dict(re.findall(r'<section data-chart="(\w+)"[^>]*>(.*?)</section>', dom, re.S))
    specs = payloads(page)
    shown = [t for t in specs["loss_curves"]["data"] if t["visible"]]
    assert len(shown) == 2 and all(t["x"] for t in shown)  # a train and a validation curve, each with points
    assert len(POINT.findall(sections["loss_curves"])) == sum(len(t["x"]) for t in shown)
    assert 'class="updatemenu-container"' in sections["loss_curves"]  # the menu to pick the job
    jobs = [t for t in specs["best_vs_final"]["data"] if t["mode"] == "markers"]
    assert len(POINT.findall(sections["best_vs_final"])) == sum(len(t["x"]) for t in jobs) > 0
