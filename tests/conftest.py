"""Shared fixtures: a SQLite file and a real PostgreSQL database per test, the served fake, the CLI."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from archiver import chain, db, models
from tests.fake_api import AUTH_HEADERS, FakeApi, serve

PG_URL = os.environ.get("ARCHIVER_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("ARCHIVER_REQUIRE_POSTGRES") == "1"


def pg_admin() -> sa.Engine | None:
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("ARCHIVER_REQUIRE_POSTGRES=1 but ARCHIVER_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server: set ARCHIVER_TEST_POSTGRES_URL (.ci/run does)")
    return sa.create_engine(db.parse_url(PG_URL), isolation_level="AUTOCOMMIT")


@contextmanager
def scratch_database(backend: str, path: Path) -> Iterator[str]:
    """An empty database: the SQLite file `path`, or a new database on the PostgreSQL server."""
    if backend == "sqlite":
        yield str(path)
        return
    admin = pg_admin()
    assert admin is not None
    db_name = f"archiver_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{db_name}"')
    url = db.parse_url(PG_URL).set(database=db_name)  # type: ignore[arg-type]
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty archive: a SQLite file path, or a new database on the PostgreSQL server."""
    with scratch_database(request.param, tmp_path / "archive.db") as url:
        yield url


@pytest.fixture
def other_db_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second fresh archive on the same backend as `db_url`."""
    with scratch_database("postgresql" if "://" in db_url else "sqlite", tmp_path / "other.db") as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = db.make_engine(db.parse_url(db_url))
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def base_url(fake: FakeApi) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def cli_env(base_url: str, **extra: str) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell leaks into the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTKEY_", "ARCHIVER_"))}
    env.update(
        PORTKEY_BASE_URL=base_url,
        PORTKEY_API_KEY=AUTH_HEADERS["x-portkey-api-key"],
        PORTKEY_VIRTUAL_KEY=AUTH_HEADERS["x-portkey-virtual-key"],
        PYTHONWARNINGS="error",
        ARCHIVER_TIMESTAMPS="never",  # stderr is a pipe here; tests of the stamps set it back to auto
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The oracle: what the archive must hold for a list of served jobs, written independently of store.py.
def nul_policy(value: Any) -> Any:
    """Typed text columns hold U+FFFD for NUL and lone surrogates (PostgreSQL text takes neither)."""
    if not isinstance(value, str):
        return value
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)


def int64(value: Any) -> Any:
    """Integer columns are 64-bit: a larger number stays only in raw."""
    return value if value is None or -(2**63) <= value < 2**63 else None


def hp_text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


STATUS_CLASS = {"validating_files": "queued", "queued": "queued", "paused": "queued", "running": "running"}


def typed(value: Any, kind: type) -> Any:
    """A typed column holds a value of its type, else NULL (raw keeps it)."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def expected_archive(served: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    latest = {job["id"]: job for job in served}
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLE_KEYS}
    for job_id, j in sorted(latest.items()):
        method = typed(j.get("method"), dict) or {}
        sub = typed(method.get(method.get("type")), dict) if method else None
        hp = typed(sub.get("hyperparameters"), dict) if sub else None
        hp = hp or typed(j.get("hyperparameters"), dict) or {}
        status = typed(j["status"], str)
        out["jobs"].append(
            (
                job_id,
                j["object"],
                int64(typed(j["created_at"], int)),
                int64(j["finished_at"]),
                int64(j.get("estimated_finish")),
                status,
                STATUS_CLASS.get(
                    status, status if status in ("succeeded", "failed", "cancelled") else "unknown"
                ),
                j["model"],
                nul_policy(j["fine_tuned_model"]),
                j["organization_id"],
                int64(j["trained_tokens"]),
                j["training_file"],
                j["validation_file"],
                int64(j["seed"]),
                nul_policy(j.get("user_provided_suffix")),
                typed(method.get("type"), str),
                hp_text(hp.get("n_epochs")),
                hp_text(hp.get("batch_size")),
                hp_text(hp.get("learning_rate_multiplier")),
                j.get("metadata"),
                j,
            )
        )
        err = j.get("error")
        err = (
            {"code": None, "message": err, "param": None}
            if isinstance(err, str) and err
            else typed(err, dict) or {}
        )
        if err.get("code") is not None or err.get("message") is not None:
            code, message, param = (nul_policy(err[k]) for k in ("code", "message", "param"))
            out["errors"].append((job_id, code, message, param))
        for pos, file_id in enumerate(typed(j["result_files"], list) or []):
            out["result_files"].append((job_id, pos, file_id))
        for pos, integ in enumerate(typed(j.get("integrations"), list) or []):
            w = integ["wandb"]
            out["integrations"].append(
                (
                    job_id,
                    pos,
                    integ["type"],
                    *(nul_policy(w.get(k)) for k in ("project", "name", "entity")),
                    integ,
                )
            )
            for tpos, tag in enumerate(w.get("tags") or []):
                out["tags"].append((job_id, pos, tpos, nul_policy(tag)))
    return out


TABLE_KEYS = {
    "jobs": [
        "id",
        "object",
        "created_at",
        "finished_at",
        "estimated_finish",
        "status",
        "status_class",
        "model",
        "fine_tuned_model",
        "organization_id",
        "trained_tokens",
        "training_file",
        "validation_file",
        "seed",
        "user_provided_suffix",
        "method_type",
        "n_epochs",
        "batch_size",
        "learning_rate_multiplier",
        "metadata",
        "raw",
    ],
    "errors": ["job_id", "code", "message", "param"],
    "result_files": ["job_id", "position", "file_id"],
    "integrations": ["job_id", "position", "type", "wandb_project", "wandb_name", "wandb_entity", "settings"],
    "tags": ["job_id", "integration_position", "position", "tag"],
}


def read_archive(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name, cols in TABLE_KEYS.items():
            table = models.metadata.tables[name]
            order = [c for c in table.primary_key.columns]
            rows = conn.execute(sa.select(*(table.c[c] for c in cols)).order_by(*order))
            out[name] = [tuple(r) for r in rows]
    return out


# Each job_history row's JSON as the text stored, wherever it is (its own raw, or its job's jobs.raw).
HISTORY_JSON = chain.history_raw()


def count_rows(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(models.metadata.tables[table])
        ).scalar_one()


def assert_archive_equals(engine: sa.Engine, served: list[dict[str, Any]]) -> None:
    actual, expected = read_archive(engine), expected_archive(served)
    for name in TABLE_KEYS:
        assert actual[name] == expected[name], f"table {name} differs from what the fake served"


# The real Portkey gateway in front of native provider fakes (tests/gateway.py).
from tests.gateway import gateway, gateway_route  # noqa: E402, F401
