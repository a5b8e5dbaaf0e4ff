"""Several routes into one archive: each with its own coverage, one failing leaves the others be,
the same job through two routes is one job, archiver.toml keeps secrets out and names routes."""

import json
import random
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import archiver
from archiver import dashboard, db
from archiver.models import job_history, job_routes, jobs, sync_gaps, sync_runs
from archiver.sync import sync
from tests.conftest import assert_archive_equals, cli_env, run_cli
from tests.fake_api import API_KEY, FakeApi, Reply, add_new_jobs, error_reply, finish_job, make_jobs, serve
from tests.test_sync import api_for

PROVIDERS = {"openai": 31, "azure-openai": 32, "bedrock": 33}  # route (and provider) -> seed of its jobs


def settled(n: int, seed: int) -> list[dict[str, Any]]:
    jobs = make_jobs(n, seed=seed)
    for job in jobs:
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            finish_job(job)
    return jobs


class Refusing(FakeApi):
    """A route whose pagination does not work through the gateway: every `after` gets 400."""

    def respond(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        if path.endswith("/fine_tuning/jobs") and "after" in params:
            return error_reply(400, "after is not supported")
        return super().respond(path, params, headers)


def route_fake(
    name: str, jobs: list[dict[str, Any]], kind: type[FakeApi] = FakeApi, provider: str | None = None
) -> FakeApi:
    """The gateway of route `name` (its own virtual key) in front of `provider` (default: `name`)."""
    fake = kind(jobs)
    fake.provider = provider or name
    fake.required = {"x-portkey-api-key": API_KEY, "x-portkey-virtual-key": f"vk-{name}"}
    return fake


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def write_config(tmp_path: Path, urls: dict[str, str]) -> dict[str, str]:
    """archiver.toml naming each route's gateway and, by variable name only, its secrets; the env."""
    lines, env = [], {"PK_API_KEY": API_KEY}
    for name, url in urls.items():
        var = "PK_VK_" + name.upper().replace("-", "_")
        lines += [f"[routes.{name}]", f'base_url = "{url}"', f'provider = "{name}"']
        lines += ['api_key_env = "PK_API_KEY"', f'virtual_key_env = "{var}"', ""]
        env[var] = f"vk-{name}"
    (tmp_path / "archiver.toml").write_text("\n".join(lines))
    return env


def served(stack: ExitStack, fakes: dict[str, FakeApi]) -> dict[str, str]:
    return {name: stack.enter_context(serve(fake)) for name, fake in fakes.items()}


def env_for(db_url: str, tmp_path: Path, urls: dict[str, str]) -> dict[str, str]:
    env = cli_env("http://127.0.0.1:9/unused", ARCHIVER_DATABASE_URL=db_url, **write_config(tmp_path, urls))
    del env["PORTKEY_API_KEY"], env["PORTKEY_VIRTUAL_KEY"], env["PORTKEY_BASE_URL"]
    return env


def check_archive(db_url: str, served: list[dict[str, Any]]) -> None:
    """The archive holds exactly what `served` says (conftest's oracle)."""
    engine = db.make_engine(db.parse_url(db_url))
    try:
        assert_archive_equals(engine, served)
    finally:
        engine.dispose()


def table(db_url: str, t: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            cols = [t.c[c] for c in columns]
            return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*cols))]
    finally:
        engine.dispose()


def test_three_routes_sync_into_one_archive_answer_the_readme_query_and_a_noop_run_asks_each_once(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    fakes = {name: route_fake(name, settled(25, seed)) for name, seed in PROVIDERS.items()}
    env = env_for(db_url, tmp_path, served(stack, fakes))
    first = run_cli("sync", "--json", "--page-size=10", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["status"], summary["exit_code"], summary["jobs_inserted"]) == ("succeeded", 0, 75)
    assert {n: (r["status"], r["jobs_inserted"], r["pages"]) for n, r in summary["routes"].items()} == {
        name: ("succeeded", 25, 3) for name in PROVIDERS
    }
    everything = [job for fake in fakes.values() for job in fake.jobs]
    check_archive(db_url, everything)
    assert table(db_url, job_routes, "route", "job_id") == sorted(
        (name, job["id"]) for name, fake in fakes.items() for job in fake.jobs
    )
    assert table(db_url, jobs, "id", "provider") == sorted(
        (job["id"], name) for name, fake in fakes.items() for job in fake.jobs
    )
    assert table(db_url, sync_runs, "id", "route", "status") == [
        (i + 1, name, "succeeded") for i, name in enumerate(PROVIDERS)
    ]
    with archiver.Archive(db_url) as archive:  # the README's question across providers
        sql = next(
            b
            for b in (Path(__file__).parent.parent / "README.md").read_text().split("```sql\n")[1:]
            if "job_routes" in b
        )
        assert archive.query(sql.split("```")[0]) == [{"route": n, "jobs": 25} for n in sorted(PROVIDERS)]
        page = archive.read(dashboard.render)  # the dashboard's routes table: one row per route
        routes_card = page.split('<div class="routes">')[1].split("</table>")[0]
        assert re.findall(
            r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>(\d+)</td><td>succeeded</td>", routes_card
        ) == [(name, name, "25") for name in PROVIDERS]
    for fake in fakes.values():
        fake.requests.clear()
    again = run_cli("sync", "--json", "--page-size=10", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {name: len(fake.requests) for name, fake in fakes.items()} == dict.fromkeys(PROVIDERS, 1)
    assert {n: r["requests"] for n, r in json.loads(again.stdout)["routes"].items()} == dict.fromkeys(
        PROVIDERS, 1
    )
    assert json.loads(again.stdout)["jobs_inserted"] == 0


def test_one_route_failing_does_not_stop_the_others_and_json_and_exit_code_say_which(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    fakes = {name: route_fake(name, settled(12, seed)) for name, seed in PROVIDERS.items()}
    fakes["azure-openai"].outage_after = 0  # every request: 503
    env = env_for(db_url, tmp_path, served(stack, fakes))
    result = run_cli("sync", "--json", "--max-retries=0", "--page-size=5", env=env, cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert summary["error"].startswith("route azure-openai: GET http://127.0.0.1:")
    assert {n: (r["status"], r["exit_code"], r["jobs_inserted"]) for n, r in summary["routes"].items()} == {
        "openai": ("succeeded", 0, 12),
        "azure-openai": ("failed", 1, 0),
        "bedrock": ("succeeded", 0, 12),
    }
    assert "HTTP 503" in summary["routes"]["azure-openai"]["error"]
    assert table(db_url, sync_runs, "route", "status") == [
        ("azure-openai", "failed"),
        ("bedrock", "succeeded"),
        ("openai", "succeeded"),
    ]
    check_archive(db_url, fakes["openai"].jobs + fakes["bedrock"].jobs)
    assert result.stderr.strip().splitlines()[-1].startswith("archiver: error: route azure-openai: GET ")


def test_a_route_refusing_cursors_keeps_its_own_blocked_gap_while_the_others_complete(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    fakes = {
        "openai": route_fake("openai", settled(12, 31)),
        "bedrock": route_fake("bedrock", settled(12, 33), Refusing),
    }
    env = env_for(db_url, tmp_path, served(stack, fakes))
    result = run_cli("sync", "--json", "--page-size=5", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)["routes"]
    assert (routes["openai"]["partial"], routes["openai"]["jobs_inserted"]) == (None, 12)
    assert routes["bedrock"]["jobs_inserted"] == 5 and "pagination" in routes["bedrock"]["partial"]
    assert [(r, after is not None, why is not None) for r, after, why in gaps(db_url)] == [
        ("bedrock", True, True)
    ]
    listing = run_cli("routes", "--json", env=env, cwd=tmp_path)
    rows = {r["route"]: r for r in json.loads(listing.stdout)}
    assert {n: (r["provider"], r["jobs"], r["last_run_status"]) for n, r in rows.items()} == {
        "openai": ("openai", 12, "succeeded"),
        "bedrock": ("bedrock", 5, "succeeded"),
    }
    assert rows["openai"]["coverage"] == "complete" and "partial" in rows["bedrock"]["coverage"]
    status = run_cli("status", env=env, cwd=tmp_path)
    lines = status.stdout.splitlines() + status.stderr.splitlines()
    assert any(line.startswith("route openai: OK") for line in lines), lines
    assert any(line.startswith("route bedrock: PARTIAL") for line in lines), lines


def gaps(db_url: str) -> list[tuple[Any, ...]]:
    return table(db_url, sync_gaps, "route", "after_id", "blocked_reason")


def test_the_same_job_through_two_routes_is_one_job_two_job_routes_rows_and_no_extra_history(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    shared = settled(20, 41)
    fakes = {
        "openai": route_fake("openai", shared),
        "team-b": route_fake("openai", [dict(j) for j in shared]),
    }
    fakes["team-b"].required["x-portkey-virtual-key"] = "vk-team-b"
    env = env_for(db_url, tmp_path, served(stack, fakes))
    config = (tmp_path / "archiver.toml").read_text().replace('provider = "team-b"', 'provider = "openai"')
    (tmp_path / "archiver.toml").write_text(config)
    result = run_cli("sync", "--json", "--page-size=5", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)["routes"]
    assert {n: (r["jobs_inserted"], r["jobs_unchanged"]) for n, r in routes.items()} == {
        "openai": (20, 0),
        "team-b": (0, 20),
    }
    check_archive(db_url, shared)
    assert table(db_url, job_routes, "route", "job_id", "first_seen_run") == sorted(
        [("openai", j["id"], 1) for j in shared] + [("team-b", j["id"], 2) for j in shared]
    )
    assert table(db_url, job_history, "job_id", "sync_run_id") == sorted((j["id"], 1) for j in shared)


def test_a_job_known_through_one_route_does_not_stop_another_routes_walk(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    history = settled(40, 42)
    fakes = {
        "openai": route_fake("openai", history[:10]),
        "team-b": route_fake("team-b", history, provider="openai"),
    }
    env = env_for(db_url, tmp_path, served(stack, fakes))
    config = (tmp_path / "archiver.toml").read_text().replace('provider = "team-b"', 'provider = "openai"')
    (tmp_path / "archiver.toml").write_text(config)
    assert run_cli("sync", "--route", "openai", "--page-size=5", env=env, cwd=tmp_path).returncode == 0
    result = run_cli("sync", "--json", "--route", "team-b", "--page-size=5", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["routes"]["team-b"]["jobs_inserted"] == 30
    check_archive(db_url, history)
    assert [j for r, j in table(db_url, job_routes, "route", "job_id") if r == "team-b"] == sorted(
        j["id"] for j in history
    )


def test_python_api_syncs_routes_and_keeps_each_routes_error(db_url: str, stack: ExitStack) -> None:
    good, bad = route_fake("openai", settled(6, 31)), route_fake("bedrock", settled(6, 33))
    bad.outage_after = 0
    urls = served(stack, {"openai": good, "bedrock": bad})
    routes = [
        archiver.Route(name, archiver.Portkey(api_key=API_KEY, virtual_key=f"vk-{name}", base_url=urls[name]))
        for name in ("openai", "bedrock")
    ]
    with archiver.Archive(db_url) as archive:
        done = archive.sync(routes=routes, max_retries=0, details=False)
        assert isinstance(done, archiver.RoutesResult)
        assert (list(done.results), list(done.errors)) == (["openai"], ["bedrock"])
        assert done.results["openai"].inserted == 6
        assert isinstance(done.worst(), archiver.ApiError)
        assert [r["route"] for r in archive.routes()] == ["openai", "bedrock"]


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            '[routes.openai]\napi_key = "pk-live-123"\n',
            "routes.openai.api_key is a secret written in clear text",
        ),
        ('[routes.openai]\nprovider = "openai"\nconfig = "{}"\n', "routes.openai.config is a secret"),
        ('[routes.openai]\nprovider = "openai"\ncolour = "red"\n', "unknown setting 'colour'"),
        ('[routes.OpenAI]\nprovider = "openai"\n', "a route name is lower-case letters"),
    ],
)
def test_a_config_with_a_clear_secret_or_an_unknown_setting_is_refused_with_one_line(
    tmp_path: Path, config: str, line: str
) -> None:
    (tmp_path / "archiver.toml").write_text(config)
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    result = run_cli("sync", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and line in result.stderr
    assert "pk-live-123" not in result.stderr
    assert not (tmp_path / "a.db").exists()


def test_an_unknown_route_name_is_refused_with_exit_2(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=str(tmp_path / "a.db"))
    without = run_cli("sync", "--route", "azure", env=env, cwd=tmp_path)
    assert (without.returncode, without.stderr.strip()) == (
        2,
        "archiver: error: no route 'azure' without a config file (only `default`); known: default",
    )
    (tmp_path / "archiver.toml").write_text('[routes.openai]\nprovider = "openai"\n')
    named = run_cli("sync", "--route", "azure", env=env, cwd=tmp_path)
    assert (
        named.returncode == 2 and "no route 'azure' in " in named.stderr and "known: openai" in named.stderr
    )


def test_0012_makes_an_existing_archive_the_route_default_and_0011_gets_its_rows_back(
    db_url: str, engine: sa.Engine
) -> None:
    fake = FakeApi(make_jobs(30, seed=95))
    sync(api_for(fake), engine, limit=10)
    for job in fake.jobs[:3]:
        finish_job(job)
    add_new_jobs(fake.jobs, 5, random.Random(95))
    fake.outage_after = fake.pages_served + 1  # the second run is cut off after a page: a gap stays
    with pytest.raises(archiver.ApiError):
        sync(api_for(fake, max_retries=0), engine, limit=2)
    db.downgrade(engine, "0011")
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        assert "job_routes" not in names
        assert "route" not in {c["name"] for c in sa.inspect(conn).get_columns("sync_runs")}
        held = conn.execute(sa.select(jobs.c.id, jobs.c.last_sync_run_id).order_by(jobs.c.id)).all()
        first = dict(
            conn.execute(
                sa.select(job_history.c.job_id, sa.func.min(job_history.c.sync_run_id)).group_by(
                    job_history.c.job_id
                )
            ).all()
        )
        open_gaps = conn.exec_driver_sql("SELECT count(*) FROM sync_gaps").scalar_one()
    assert open_gaps == 1
    db.upgrade(engine, "0012")
    assert table(db_url, job_routes, "route", "job_id", "first_seen_run", "last_seen_run") == [
        ("default", job_id, first[job_id], last) for job_id, last in held
    ]
    assert table(db_url, sync_runs, "id", "route", "status") == [
        (1, "default", "succeeded"),
        (2, "default", "failed"),
    ]
    assert [r for r, _, _ in gaps(db_url)] == ["default"]
    with archiver.Archive(db_url) as archive:
        assert archive.verify().intact  # the runs' records never said `default`: still true
    fake.outage_after = None
    db.upgrade(engine)  # to head: a sync needs the revisions after 0012 too (run_listings)
    resumed = sync(api_for(fake), engine, limit=10)  # the gap is the route default's: walked and closed
    assert gaps(db_url) == [] and resumed.partial is None
    assert_archive_equals(engine, fake.jobs)


def test_a_job_gone_from_one_route_but_listed_by_another_leaves_that_route_and_is_not_vanished(
    db_url: str, tmp_path: Path, stack: ExitStack
) -> None:
    shared = settled(12, 43)
    fakes = {
        "openai": route_fake("openai", list(shared)),
        "team-b": route_fake("team-b", shared, provider="openai"),
    }
    env = env_for(db_url, tmp_path, served(stack, fakes))
    config = (tmp_path / "archiver.toml").read_text().replace('provider = "team-b"', 'provider = "openai"')
    (tmp_path / "archiver.toml").write_text(config)
    assert run_cli("sync", "--page-size=5", env=env, cwd=tmp_path).returncode == 0
    gone = fakes["openai"].jobs[4]
    fakes["openai"].jobs.remove(gone)
    full = run_cli("sync", "--json", "--full", "--parallel=1", "--route", "openai", env=env, cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["routes"]["openai"]["jobs_vanished"] == 0
    assert table(db_url, jobs, "id", "vanished_at") == sorted((j["id"], None) for j in shared)
    routes = table(db_url, job_routes, "route", "job_id")
    assert ("openai", gone["id"]) not in routes and ("team-b", gone["id"]) in routes
    assert len(routes) == 2 * len(shared) - 1
