"""What the archive's detail tables must hold for what the fake served (independent of details.py)."""

import base64
import hashlib
from typing import Any

import sqlalchemy as sa

from archiver import models
from archiver.fake import FakeApi

FINAL = ("succeeded", "failed", "cancelled")

DETAIL_KEYS = {
    "job_events": ["job_id", "id", "created_at", "level", "type", "message", "data", "raw"],
    "job_checkpoints": [
        "job_id",
        "id",
        "created_at",
        "step_number",
        "fine_tuned_model_checkpoint",
        "metrics",
        "raw",
    ],
    "files": ["id", "filename", "bytes", "purpose", "created_at", "status", "raw", "missing"],
    "file_contents": ["file_id", "content", "size", "sha256", "content_type", "encoding", "note"],
    "job_metrics": ["job_id", "file_id", "step", "metric", "value"],
    "job_details": ["job_id", "state", "error"],
}


def final_jobs(fake: FakeApi) -> list[dict[str, Any]]:
    return [j for j in fake.jobs if isinstance(j, dict) and j.get("status") in FINAL]


def expected_details(
    fake: FakeApi, metrics: dict[str, list[dict[str, Any]]]
) -> dict[str, list[tuple[Any, ...]]]:
    """`metrics`: each result file's rows, as fake_details.add_details made them."""
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in DETAIL_KEYS}
    named: set[str] = set()
    for job in final_jobs(fake):
        job_id = job["id"]
        for e in fake.events.get(job_id, []):
            out["job_events"].append(
                (job_id, e["id"], e["created_at"], e["level"], e["type"], e["message"], e["data"], e)
            )
        for c in fake.checkpoints.get(job_id, []):
            out["job_checkpoints"].append(
                (
                    job_id,
                    c["id"],
                    c["created_at"],
                    c["step_number"],
                    c["fine_tuned_model_checkpoint"],
                    c["metrics"],
                    c,
                )
            )
        named.update(f for f in (job.get("training_file"), job.get("validation_file")) if f)
        for file_id in job.get("result_files") or []:
            named.add(file_id)
            body = fake.contents[file_id]
            plain = body.startswith(b"step")
            out["file_contents"].append(
                (
                    file_id,
                    body,
                    len(body),
                    hashlib.sha256(body).hexdigest(),
                    "application/octet-stream",
                    "csv" if plain else "base64",
                    None,
                )
            )
            assert plain or base64.b64decode(body).startswith(b"step")
            for row in metrics[file_id]:
                out["job_metrics"] += [
                    (job_id, file_id, row["step"], k, float(v)) for k, v in row.items() if k != "step"
                ]
        out["job_details"].append((job_id, "done", None))
    for file_id in named:
        f = fake.files[file_id]
        out["files"].append(
            (file_id, f["filename"], f["bytes"], f["purpose"], f["created_at"], f["status"], f, None)
        )
    return {name: sorted(rows, key=key) for name, rows in out.items()}


def key(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(v) for v in row[:4])


def read_details(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name, cols in DETAIL_KEYS.items():
            table = models.metadata.tables[name]
            rows = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in conn.execute(sa.select(*(table.c[c] for c in cols)))
            ]
            out[name] = sorted(rows, key=key)
    return out


def assert_details_equal(engine: sa.Engine, fake: FakeApi, metrics: dict[str, list[dict[str, Any]]]) -> None:
    actual, expected = read_details(engine), expected_details(fake, metrics)
    for name in DETAIL_KEYS:
        assert actual[name] == expected[name], f"table {name} differs from what the fake served"
