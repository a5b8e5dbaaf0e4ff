"""normalize.job over bodies the real gateway returned (tests/fixtures: providers.md's samples)."""

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from archiver import normalize

FIXTURES = Path(__file__).parent / "fixtures"


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def listed(provider: str) -> list[dict[str, Any]]:
    return list(sample(f"{provider}-list-page1")["data"])


# (provider, position in the sample page, the canonical values expected), written from the sample by hand.
SPOT_CHECKS: list[tuple[str, int, dict[str, Any]]] = [
    (
        "bedrock",
        0,
        {
            "object": "finetune",
            "status": "running",
            "status_class": "running",
            "created_at": 1748779200,
            "finished_at": None,
            "model": None,
            "training_file": "",
            "n_epochs": None,
            "error": None,  # {} is no error
        },
    ),
    (
        "bedrock",
        4,
        {
            "status_class": "succeeded",
            "created_at": 1748735932,
            "finished_at": 1748738272,
            "fine_tuned_model": "arn:aws:bedrock:us-east-1:123456789012:custom-model/"
            "meta.llama3-1-8b-instruct-v1:0:128k/70ef5ffdf504m",
        },
    ),
    ("bedrock", 2, {"status": "cancelled", "status_class": "cancelled", "finished_at": None}),
    (
        "vertex-ai",
        0,
        {
            "id": "4000000000000000000",
            "status_class": "running",
            "created_at": 1748779199,  # 1748779199876 ms
            "trained_tokens": 60000,  # "60000"
            "n_epochs": "3",
            "batch_size": "ADAPTER_SIZE_FOUR",
            "learning_rate_multiplier": "1",
            "model": "gemini-1.5-pro-002",
            "error": None,
        },
    ),
    ("vertex-ai", 1, {"status": "queued", "status_class": "queued", "trained_tokens": None}),
    (
        "vertex-ai",
        5,
        {
            "status_class": "succeeded",
            "finished_at": 1748727694,
            "trained_tokens": 60050,
            "fine_tuned_model": "projects/123456789012/locations/us-central1/models/4000000000000039596@1",
        },
    ),
    (
        "vertex-ai",
        7,
        {
            "status_class": "failed",
            "error": {
                "code": "3",  # an integer google.rpc code, as text
                "message": "Dataset validation failed: 12 examples exceed the token limit.",
                "param": None,
            },
        },
    ),
    (
        "fireworks-ai",
        0,
        {
            "id": "b4713aa225",
            "object": None,
            "status_class": "running",
            "created_at": 1748779199,
            "finished_at": None,
            "n_epochs": "1",
            "learning_rate_multiplier": None,  # Fireworks sends learning_rate
            "fine_tuned_model": "accounts/acct-1/models/ft-b4713aa225",
        },
    ),
    ("fireworks-ai", 2, {"status_class": "queued"}),
    ("fireworks-ai", 5, {"status_class": "succeeded", "created_at": 1748725114, "finished_at": 1748727214}),
    (
        "fireworks-ai",
        7,
        {
            "status_class": "failed",
            "finished_at": 1748705700,  # from completed_at
            "error": {
                "code": "INVALID_ARGUMENT",
                "message": "dataset row 17: missing 'messages'",
                "param": None,
            },
        },
    ),
    ("fireworks-ai", 8, {"status_class": "cancelled", "finished_at": 1748694943}),
]


@pytest.mark.parametrize(("provider", "position", "expected"), SPOT_CHECKS)
def test_sample_job_gets_canonical_values(provider: str, position: int, expected: dict[str, Any]) -> None:
    raw = listed(provider)[position]
    before = json.dumps(raw)
    canon = normalize.job(raw, normalize.Notes(), provider)
    assert {k: canon[k] for k in expected} == expected
    assert canon["provider"] == provider
    assert json.dumps(raw) == before  # raw is left as received


def test_bedrock_retrieve_has_the_same_canonical_times_as_its_list_entry() -> None:
    got, notes = sample("bedrock-retrieve"), normalize.Notes()
    canon = normalize.job(got, notes, "bedrock")
    assert canon == normalize.job(listed("bedrock")[0], notes, "bedrock") | {
        "fine_tuned_model": "custom-0000",
        "training_file": "s3%3A%2F%2Fft-bucket%2Fjob-0000%2Ftrain.jsonl",
        "n_epochs": "2",
        "batch_size": "1",
        "learning_rate_multiplier": "1e-05",
    }


@pytest.mark.parametrize("provider", ["bedrock", "vertex-ai", "fireworks-ai"])
def test_a_whole_sample_page_needs_only_info_notes(provider: str) -> None:
    """Every job's times are milliseconds: counted once per field at INFO, nothing at WARNING."""
    notes = normalize.Notes()
    jobs = listed(provider)
    for raw in jobs:
        normalize.job(raw, notes, provider)
    assert set(notes.level.values()) == {logging.INFO}
    counts = {name: count for (name, reason), (count, _) in notes.counts.items()}
    ended = sum(1 for j in jobs if (j.get("finished_at") or j.get("completed_at")) is not None)
    end_field = "completed_at" if provider == "fireworks-ai" else "finished_at"
    assert counts == {"created_at": len(jobs), end_field: ended}


def test_every_status_in_the_samples_is_classified() -> None:
    statuses = {j["status"] for p in ("bedrock", "vertex-ai", "fireworks-ai") for j in listed(p)}
    assert {s: normalize.status_class(s) for s in statuses} == {
        "queued": "queued",
        "running": "running",
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
    }


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("Training data validation failed.", {"code": None, "message": "Training data validation failed."}),
        ("", None),
        ({}, None),
        ({"code": 3, "message": "CANCELED"}, {"code": "3", "message": "CANCELED"}),
    ],
)
def test_error_shapes(error: Any, expected: dict[str, Any] | None) -> None:
    """Bedrock's single-job GET sends the failure message as a string; Vertex an integer code."""
    notes = normalize.Notes()
    canon = normalize.job({"id": "job-1", "error": error}, notes)
    assert canon["error"] == (None if expected is None else expected | {"param": None})
    assert notes.counts == {}


def test_the_readme_status_table_is_normalize_s_mapping() -> None:
    """Every name in the status table of docs/providers.md classifies as its row says, and the table names
    every status STATUS_CLASSES knows."""
    readme = (Path(__file__).parent.parent / "docs" / "providers.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `") and "JOB_STATE_" in line]
    table = {}
    for row in rows:
        cls, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        for name in re.findall(r"`([^`]+)`", " ".join(cells)):
            table[name] = cls.strip("`")
    assert {name: normalize.status_class(name) for name in table} == table
    keys = {normalize.STATUS_KEY.sub("", n.lower().removeprefix("job_state_")) for n in table}
    assert keys == set(normalize.STATUS_CLASS)
