"""Details through the real Portkey gateway: OpenAI and Azure OpenAI give them; the other routes cannot.

The upstream of openai and azure-openai is archiver's own fake (it speaks OpenAI's shapes), behind the
gateway's custom host; bedrock, vertex-ai and fireworks-ai are the native fakes of tests/native_fakes.py.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import db
from archiver.details import UNSUPPORTED
from archiver.fake import FakeApi, serve
from tests import native_fakes as nf
from tests.conftest import cli_env, run_cli
from tests.details_oracle import assert_details_equal
from tests.gateway import Gateway, RouteFactory, route_env
from tests.test_details import final_fake

OPENAI_KEY = "sk-archiver-gateway-test"


def config(provider: str, upstream: str) -> dict[str, Any]:
    if provider == "openai":
        return {"provider": "openai", "api_key": OPENAI_KEY, "custom_host": f"{upstream}/v1"}
    return {
        "provider": "azure-openai",
        "api_key": nf.AZURE_API_KEY,
        "resource_name": "archiver-test",
        "api_version": nf.AZURE_API_VERSION,
        "custom_host": f"{upstream}/openai",
    }


@contextmanager
def openai_route(gateway: Gateway, provider: str, fake: FakeApi) -> Iterator[dict[str, str]]:
    """The PORTKEY_* settings that reach `fake` through the gateway as `provider`."""
    fake.required = (
        {"authorization": f"Bearer {OPENAI_KEY}"} if provider == "openai" else {"api-key": nf.AZURE_API_KEY}
    )
    with serve(fake) as base_url:
        yield route_env(gateway, config(provider, base_url.removesuffix("/v1")))


@pytest.mark.parametrize("provider", ["openai", "azure-openai"])
def test_sync_through_the_gateway_archives_every_detail_as_served(
    gateway: Gateway, provider: str, db_url: str
) -> None:
    fake, metrics = final_fake(12, seed=60)
    with openai_route(gateway, provider, fake) as env:
        done = run_cli(
            "sync", "--page-size=5", env=cli_env(env["PORTKEY_BASE_URL"], ARCHIVER_DATABASE_URL=db_url, **env)
        )
        assert done.returncode == 0, done.stderr
        fake.requests.clear()
        again = run_cli(
            "sync", "--json", env=cli_env(env["PORTKEY_BASE_URL"], ARCHIVER_DATABASE_URL=db_url, **env)
        )
    assert again.returncode == 0, again.stderr
    assert len(fake.requests) == 1  # a second run asks for the first page only
    paths = {r.path.split("?")[0] for r in fake.requests}
    assert paths == {"/v1/fine_tuning/jobs" if provider == "openai" else "/openai/fine_tuning/jobs"}
    engine = db.make_engine(db.parse_url(db_url))
    try:
        assert_details_equal(engine, fake, metrics)  # re-serialised numbers (1.0 -> 1) compare equal
        with engine.connect() as conn:
            providers = conn.execute(sa.text("SELECT DISTINCT provider FROM jobs")).scalars().all()
        assert providers == [provider]
    finally:
        engine.dispose()


@pytest.mark.parametrize("provider", ["bedrock", "vertex-ai", "fireworks-ai"])
def test_a_route_the_gateway_cannot_reach_details_through_is_recorded_once_and_never_asked(
    gateway_route: RouteFactory, provider: str, db_url: str
) -> None:
    jobs = nf.make_native_jobs(provider, 12)
    with gateway_route(provider, jobs=jobs, accept_job_id_as_token=True) as route:
        env = cli_env(route.base_url, ARCHIVER_DATABASE_URL=db_url, **route.env)
        done = run_cli("sync", "--page-size=50", env=env)
        assert done.returncode == 0, done.stderr
        asked = [r.path for r in route.fake.requests]
        route.fake.requests.clear()
        assert run_cli("sync", env=env).returncode == 0
        again = [r.path for r in route.fake.requests]
        status = run_cli("status", env=env)
    engine = db.make_engine(db.parse_url(db_url))
    try:
        with engine.connect() as conn:
            final = conn.execute(
                sa.text(
                    "SELECT count(*) FROM jobs WHERE status_class IN ('succeeded', 'failed', 'cancelled')"
                )
            ).scalar_one()
            rows = conn.execute(sa.text("SELECT state, error, attempts FROM job_details")).all()
    finally:
        engine.dispose()
    assert final > 0
    assert [tuple(r) for r in rows] == [("unsupported", UNSUPPORTED[provider], 0)] * final
    assert not [p for p in asked + again if "events" in p or "checkpoints" in p or "files" in p]
    assert f"details: {final:,} jobs have none through this route: {UNSUPPORTED[provider]}" in status.stdout
    assert status.returncode == 0, status.stdout
