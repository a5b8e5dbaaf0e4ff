"""Three routes through the real Portkey gateway (Azure OpenAI, Bedrock and Fireworks native fakes
behind it) into one archive, named in one archiver.toml whose secrets are variable names only."""

import json
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa

from archiver import db
from tests import native_fakes as nf
from tests.conftest import cli_env, run_cli
from tests.gateway import PORTKEY_API_KEY, RouteFactory, provider_config

PROVIDERS = {"azure": "azure-openai", "bedrock": "bedrock", "fireworks": "fireworks-ai"}  # route -> provider


def rows(db_url: str, sql: str) -> set[tuple[str, str]]:
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            return {(r[0], r[1]) for r in conn.execute(sa.text(sql))}
    finally:
        engine.dispose()


def test_three_providers_through_the_real_gateway_fill_one_archive_and_a_noop_lists_each_once(
    db_url: str, tmp_path: Path, gateway_route: RouteFactory
) -> None:
    with ExitStack() as stack:
        routes = {
            name: stack.enter_context(gateway_route(provider, nf.make_native_jobs(provider, 12, seed=i)))
            for i, (name, provider) in enumerate(PROVIDERS.items())
        }
        lines, env = [], {"PK_API_KEY": PORTKEY_API_KEY}
        for name, route in routes.items():
            config = provider_config(PROVIDERS[name], route.upstream)
            env[f"PK_CONFIG_{name.upper()}"] = json.dumps(config)
            lines += [f"[routes.{name}]", f'base_url = "{route.base_url}"', 'api_key_env = "PK_API_KEY"']
            lines += [f'config_env = "PK_CONFIG_{name.upper()}"', ""]
        (tmp_path / "archiver.toml").write_text("\n".join(lines))
        env = cli_env("http://127.0.0.1:9/unused", ARCHIVER_DATABASE_URL=db_url, **env)
        del env["PORTKEY_API_KEY"], env["PORTKEY_VIRTUAL_KEY"], env["PORTKEY_BASE_URL"]

        first = run_cli("sync", "--json", "--no-details", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        summary = json.loads(first.stdout)["routes"]
        assert {n: (r["status"], r["jobs_inserted"]) for n, r in summary.items()} == {
            name: ("succeeded", 12) for name in PROVIDERS
        }
        served = {
            (name, nf.gateway_id(PROVIDERS[name], job))
            for name, route in routes.items()
            for job in route.fake.jobs
        }
        assert rows(db_url, "SELECT route, job_id FROM job_routes") == served
        by_provider = {(PROVIDERS[name], job_id) for name, job_id in served}
        assert rows(db_url, "SELECT provider, id FROM jobs") == by_provider

        for route in routes.values():
            route.fake.requests.clear()
        again = run_cli("sync", "--json", "--no-details", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["jobs_inserted"] == 0
        assert {name: len(route.fake.list_requests()) for name, route in routes.items()} == dict.fromkeys(
            PROVIDERS, 1
        )
