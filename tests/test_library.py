"""The Python API: the README's snippet runs as written, every public name is documented, no secret leaks."""

import inspect
import logging
import os
import re
from pathlib import Path

import pytest

import archiver
from tests.conftest import assert_archive_equals
from tests.fake_api import API_KEY, VIRTUAL_KEY, FakeApi, make_jobs, serve

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_snippet() -> str:
    """The first ```python block of the README's Python API section."""
    text = README.read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]  # type: ignore[index]


def test_the_readme_snippet_runs_as_written_against_the_demo_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeApi(make_jobs(250, seed=60, plain=True))
    with serve(fake) as base_url:
        for name in [v for v in os.environ if v.startswith(("PORTKEY_", "ARCHIVER_"))]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("PORTKEY_BASE_URL", base_url)
        monkeypatch.setenv("PORTKEY_API_KEY", API_KEY)
        monkeypatch.setenv("PORTKEY_VIRTUAL_KEY", VIRTUAL_KEY)
        monkeypatch.chdir(tmp_path)
        scope: dict[str, object] = {}
        exec(compile(readme_snippet(), "README.md", "exec"), scope)
    archive = scope["archive"]
    assert isinstance(archive, archiver.Archive)
    result = scope["result"]
    assert (result.inserted, result.mode, result.partial) == (250, "incremental", None)  # type: ignore[attr-defined]
    by_status = {r["status"]: r["n"] for r in scope["rows"]}  # type: ignore[attr-defined]
    assert sum(by_status.values()) == 250
    assert scope["health"].verdict == "OK"  # type: ignore[attr-defined]
    assert_archive_equals(archive.engine(), fake.jobs)
    archive.close()


def public_callables() -> list[tuple[str, object, str]]:
    """(name, callable, the docstring that documents its parameters) for the API's classes,
    constructors, methods and functions (error classes document themselves in errors.py)."""
    out = []
    for name in archiver.__all__:
        obj = getattr(archiver, name)
        if name == "__version__" or (inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        if not inspect.isclass(obj):
            out.append((name, obj, inspect.getdoc(obj) or ""))
            continue
        out.append((name, obj, inspect.getdoc(obj) or ""))  # the class docstring documents __init__
        for member_name, member in vars(obj).items():
            if not member_name.startswith("_") and inspect.isfunction(member):
                out.append((f"{name}.{member_name}", member, inspect.getdoc(member) or ""))
    return out


def test_every_public_name_is_exported_and_documents_each_parameter_and_what_it_raises() -> None:
    assert sorted(archiver.__all__) == sorted(dir(archiver))
    for name, obj, doc in public_callables():
        assert doc, f"{name} has no docstring"
        if name in RESULTS:
            continue  # returned, not called: their fields are documented where they are declared
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]  # type: ignore[arg-type]
        for param in params:
            assert param in doc, f"{name}: parameter {param} is not documented"
        if params or not inspect.isclass(obj):
            assert "Raise" in doc or "raise" in doc or name in NEVER_RAISE, f"{name}: what it raises"


RESULTS = {"Health", "SyncResult", "RoutesResult"}
NEVER_RAISE = {
    "log_filter",
    "Archive.close",
    "Portkey.headers",
    "Portkey.secrets",
    "Portkey.settings",
    "Health.ok",
    "SyncResult.counters",
    "RoutesResult.ok",
}


def test_the_error_tree_is_importable_from_archiver() -> None:
    assert issubclass(archiver.AuthError, archiver.ConfigError)
    for name in ("ConfigError", "ApiError", "DatabaseError", "RejectedItems", "TryLater"):
        assert issubclass(getattr(archiver, name), archiver.ArchiverError)


def test_secrets_given_to_portkey_stay_out_of_repr_errors_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {"api_key": "pk-LIBRARY-CANARY-1", "virtual_key": "vk-LIBRARY-CANARY-2"}
    fake = FakeApi(make_jobs(5))  # requires the test keys: these are refused with 401
    with serve(fake) as base_url:
        route = archiver.Portkey(**secrets, base_url=base_url)
        with pytest.raises(archiver.AuthError) as refused:
            archiver.Archive(str(tmp_path / "a.db")).sync(route, max_retries=0)
    logger = logging.getLogger("archiver.test")
    handler = logging.StreamHandler(stream := __import__("io").StringIO())
    handler.addFilter(archiver.log_filter())
    logger.addHandler(handler)
    logger.warning("leaking %s and %s", *secrets.values())
    logger.removeHandler(handler)
    for secret in secrets.values():
        assert secret not in repr(route)
        assert secret not in str(refused.value)
        assert secret not in stream.getvalue()
    assert "[redacted]" in stream.getvalue()


@pytest.mark.parametrize(
    "setting",
    [
        {"parallel": 0},
        {"parallel": "x"},
        {"page_size": 0},
        {"max_retries": -1},
        {"timeout": 0},
        {"page_size": True},
    ],
)
def test_a_setting_out_of_range_is_a_config_error_before_anything_is_opened(
    tmp_path: Path, setting: dict[str, object]
) -> None:
    route = archiver.Portkey(api_key="pk-x", virtual_key="vk-x", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(archiver.ConfigError, match=f"^{next(iter(setting))} must be "):
        archiver.Archive(str(tmp_path / "a.db")).sync(route, **setting)  # type: ignore[arg-type]
    assert not (tmp_path / "a.db").exists()
