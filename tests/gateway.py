"""The real Portkey OSS gateway (npm @portkey-ai/gateway 1.15.2) on 127.0.0.1, in front of native fakes.

    def test_sync_through_bedrock(gateway_route):
        with gateway_route("bedrock", jobs=make_native_jobs("bedrock", 40)) as route:
            run_cli("sync", ..., env=cli_env(route.base_url, **route.env))
            route.fake.requests  # what the gateway asked the native API

The gateway is installed on first use (`npm ci` in tests/gateway), started once per session on a free
port, bound to the loopback interface by the listen-localhost.js preload, and stopped at the end. Each
`gateway_route` serves a fresh NativeFake and yields the PORTKEY_* settings that send archiver's
requests through the gateway to it: everything the provider needs travels in PORTKEY_CONFIG.
"""

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests import native_fakes as nf

GATEWAY_DIR = Path(__file__).parent / "gateway"
GATEWAY_VERSION = "1.15.2"
PACKAGE = GATEWAY_DIR / "node_modules" / "@portkey-ai" / "gateway"
START_SERVER = PACKAGE / "build" / "start-server.js"
PRELOAD = GATEWAY_DIR / "listen-localhost.js"
PORTKEY_API_KEY = "pk-gateway-test"  # the OSS gateway ignores it; archiver requires one
START_TIMEOUT = 30.0
# Variables the gateway would act on (proxies, AWS/Azure credentials, a replaced custom-host allow-list):
# none of the developer's may reach it.
SCRUBBED = re.compile(
    r"^(HTTPS?_PROXY|NO_PROXY|ALL_PROXY|AWS_.*|AZURE_.*|TRUSTED_CUSTOM_HOSTS|PORT|NODE_.*)$", re.I
)


def installed_version() -> str | None:
    try:
        return str(json.loads((PACKAGE / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_gateway_installed() -> None:
    """Install the pinned gateway into tests/gateway/node_modules unless it is already there.

    Fails the test (never skips) when npm is missing or the install fails: the README's plain `pytest`
    must either run these tests or say why it cannot.
    """
    if installed_version() == GATEWAY_VERSION and START_SERVER.is_file():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("the gateway tests need Node.js 20+ and npm on PATH (to install @portkey-ai/gateway)")
    lock_path = GATEWAY_DIR / "node_modules.lock"
    with lock_path.open("w") as lock:  # pytest-xdist workers: one installs, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() == GATEWAY_VERSION and START_SERVER.is_file():
            return
        verb = "ci" if (GATEWAY_DIR / "package-lock.json").is_file() else "install"
        # --ignore-scripts: the package's only script is a patch-package postinstall with no patches.
        cmd = [npm, verb, "--no-audit", "--no-fund", "--ignore-scripts"]
        try:
            done = subprocess.run(
                cmd, cwd=GATEWAY_DIR, capture_output=True, text=True, timeout=300, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm {verb}` in {GATEWAY_DIR} took over 300 s (is the npm registry reachable?)")
        if done.returncode != 0 or installed_version() != GATEWAY_VERSION:
            tail = (done.stdout + done.stderr)[-3000:]
            pytest.fail(f"`npm {verb}` in {GATEWAY_DIR} failed (exit {done.returncode}):\n{tail}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a TCP listener on `port`, from `ss -ltn` (e.g. ['127.0.0.1:8787'])."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return [line.split()[3] for line in out.stdout.splitlines() if line.strip()]


@dataclass
class Gateway:
    url: str  # http://127.0.0.1:PORT, no /v1
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _wait_until_up(gateway: Gateway) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            return False
        try:
            if httpx.get(gateway.url + "/", timeout=1.0).text.startswith("AI Gateway says hey"):
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def start_gateway(log_dir: Path) -> Gateway:
    """Start the gateway on a free loopback port and wait for it; fails the test if it cannot start."""
    ensure_gateway_installed()
    env = {k: v for k, v in os.environ.items() if not SCRUBBED.match(k)}
    env["NODE_OPTIONS"] = f"--require={PRELOAD}"
    for _ in range(3):  # a free port can be taken between probing and listening
        port = free_port()
        log = log_dir / f"gateway-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["node", str(START_SERVER), f"--port={port}", "--headless"],
                cwd=GATEWAY_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        gateway = Gateway(f"http://127.0.0.1:{port}", port, process, log)
        if _wait_until_up(gateway):
            return gateway
        stop_gateway(gateway)
        if "EADDRINUSE" not in gateway.log_tail():
            break
    pytest.fail(f"the gateway did not start within {START_TIMEOUT} s:\n{gateway.log_tail()}")


def stop_gateway(gateway: Gateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()


@contextmanager
def run_gateway(log_dir: Path) -> Iterator[Gateway]:
    """The gateway, running for the duration of the block (its output goes to a log in `log_dir`)."""
    gateway = start_gateway(log_dir)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


class Route(NamedTuple):
    """What a test needs to talk to one provider through the gateway."""

    base_url: str  # the gateway's base URL, http://127.0.0.1:PORT/v1 (= env["PORTKEY_BASE_URL"])
    env: dict[str, str]  # PORTKEY_* variables for archiver
    fake: nf.NativeFake  # the upstream: its jobs, switches and request log
    headers: dict[str, str]  # the same settings as HTTP headers, for direct httpx calls
    upstream: str  # the native fake's root URL, http://127.0.0.1:PORT


def provider_config(provider: str, upstream: str) -> dict[str, Any]:
    """The x-portkey-config JSON that routes `provider` to the native fake served at `upstream`.

    The custom host replaces the provider's base URL: the gateway then appends its native path
    (Vertex: /v1/projects/{project}/locations/{region}/tuningJobs; Fireworks: /supervisedFineTuningJobs,
    the account living in the host; Bedrock: /model-customization-jobs; Azure: /fine_tuning/jobs).
    """
    if provider == "bedrock":
        return {
            "provider": "bedrock",
            "aws_access_key_id": nf.AWS_ACCESS_KEY_ID,
            "aws_secret_access_key": nf.AWS_SECRET_ACCESS_KEY,
            "aws_region": nf.AWS_REGION,
            "custom_host": upstream,
        }
    if provider == "vertex-ai":
        return {
            "provider": "vertex-ai",
            "api_key": nf.VERTEX_TOKEN,
            "vertex_project_id": nf.VERTEX_PROJECT_ID,
            "vertex_region": nf.VERTEX_REGION,
            "custom_host": upstream,  # no /v1: the gateway adds it
        }
    if provider == "fireworks-ai":
        return {
            "provider": "fireworks-ai",
            "api_key": nf.FIREWORKS_API_KEY,
            "fireworks_account_id": nf.FIREWORKS_ACCOUNT,  # used only without a custom host
            "custom_host": f"{upstream}/v1/accounts/{nf.FIREWORKS_ACCOUNT}",
        }
    if provider == "azure-openai":
        return {
            "provider": "azure-openai",
            "api_key": nf.AZURE_API_KEY,
            "resource_name": "archiver-test",  # used only without a custom host
            "api_version": nf.AZURE_API_VERSION,
            "custom_host": f"{upstream}/openai",
        }
    raise ValueError(f"no gateway route for {provider!r}; one of {nf.PROVIDERS}")


def route_env(gateway: Gateway, config: dict[str, Any]) -> dict[str, str]:
    return {
        "PORTKEY_BASE_URL": f"{gateway.url}/v1",
        "PORTKEY_API_KEY": PORTKEY_API_KEY,
        "PORTKEY_CONFIG": json.dumps(config, separators=(",", ":")),
    }


def env_headers(env: dict[str, str]) -> dict[str, str]:
    """The headers archiver sends for these PORTKEY_* variables (its documented mapping)."""
    names = {
        "PORTKEY_API_KEY": "x-portkey-api-key",
        "PORTKEY_VIRTUAL_KEY": "x-portkey-virtual-key",
        "PORTKEY_PROVIDER": "x-portkey-provider",
        "PORTKEY_CONFIG": "x-portkey-config",
        "PORTKEY_CUSTOM_HOST": "x-portkey-custom-host",
    }
    headers = {names[k]: v for k, v in env.items() if k in names}
    if "PORTKEY_PROVIDER_API_KEY" in env:
        headers["authorization"] = f"Bearer {env['PORTKEY_PROVIDER_API_KEY']}"
    return headers


@contextmanager
def open_route(
    gateway: Gateway,
    provider: str,
    jobs: list[dict[str, Any]] | None = None,
    *,
    accept_job_id_as_token: bool = False,
) -> Iterator[Route]:
    """Serve a NativeFake of `provider` holding `jobs` (native records, newest first; default 30 generated
    ones) and yield the Route that reaches it through `gateway`."""
    fake = nf.NativeFake(provider, jobs, accept_job_id_as_token=accept_job_id_as_token)
    with nf.serve_native(fake) as upstream:
        env = route_env(gateway, provider_config(provider, upstream))
        yield Route(env["PORTKEY_BASE_URL"], env, fake, env_headers(env), upstream)


RouteFactory = Callable[..., AbstractContextManager[Route]]


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The real gateway, installed if needed, started once per session on 127.0.0.1."""
    with run_gateway(tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
def gateway_route(gateway: Gateway) -> RouteFactory:
    """`gateway_route(provider, jobs=None, *, accept_job_id_as_token=False)`: a context manager that
    yields a Route (base_url, env, fake, headers, upstream) through the session's gateway."""

    def factory(
        provider: str, jobs: list[dict[str, Any]] | None = None, *, accept_job_id_as_token: bool = False
    ) -> AbstractContextManager[Route]:
        return open_route(gateway, provider, jobs, accept_job_id_as_token=accept_job_id_as_token)

    return factory


def provider_headers(provider: str, upstream: str) -> dict[str, str]:
    """The same route without a config: x-portkey-provider, Authorization and per-provider x-portkey-* headers
    (archiver has no variables for the latter yet; PORTKEY_CONFIG carries them instead)."""
    config = provider_config(provider, upstream)
    headers = {"x-portkey-provider": provider, "x-portkey-custom-host": config["custom_host"]}
    if "api_key" in config:
        headers["authorization"] = f"Bearer {config['api_key']}"
    extra = {
        "aws_access_key_id": "x-portkey-aws-access-key-id",
        "aws_secret_access_key": "x-portkey-aws-secret-access-key",
        "aws_region": "x-portkey-aws-region",
        "vertex_project_id": "x-portkey-vertex-project-id",
        "vertex_region": "x-portkey-vertex-region",
        "fireworks_account_id": "x-portkey-fireworks-account-id",
        "api_version": "x-portkey-azure-api-version",
        "resource_name": "x-portkey-azure-resource-name",
    }
    return headers | {extra[k]: v for k, v in config.items() if k in extra}
