"""Details for the fake API's jobs: events, checkpoints, files and result files in OpenAI's shapes."""

import base64
import random
from typing import Any

from archiver.fake import FakeApi

FINAL = ("succeeded", "failed", "cancelled")

# A result file's columns by where they come from (see the README's provider table).
COLUMNS = {
    "openai": ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"],
    "azure": [
        "step",
        "train_loss",
        "train_mean_token_accuracy",
        "valid_loss",
        "validation_mean_token_accuracy",
        "full_valid_loss",
        "full_valid_mean_token_accuracy",
    ],
    "dpo": ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy", "dpo_margin"],
    "reinforcement": [
        "step",
        "train_reward_mean",
        "valid_reward_mean",
        "train_reasoning_tokens_mean",
        "valid_reasoning_tokens_mean",
    ],
}


def result_rows(rng: random.Random, columns: list[str], steps: int) -> list[dict[str, Any]]:
    """One row per step; validation cells only every fifth step (the others are empty)."""
    rows = []
    loss = rng.uniform(1.5, 3.0)
    for step in range(1, steps + 1):
        loss *= rng.uniform(0.9, 1.0)
        row: dict[str, Any] = {"step": step}
        for name in columns[1:]:
            if name.startswith(("valid", "full_valid")) and step % 5:
                continue
            value = (
                loss if "loss" in name else rng.uniform(0, 1) if "accuracy" in name else rng.uniform(0, 90)
            )
            row[name] = round(value + (rng.uniform(0, 0.3) if name.startswith("valid") else 0), 5)
        rows.append(row)
    return rows


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    lines = [",".join(columns)]
    lines += [",".join("" if row.get(c) is None else repr(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def add_details(
    fake: FakeApi, seed: int = 0, plain_every: int = 4, only: set[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Fill in the details of every final job the fake serves (of those in `only`, if given); one
    result file in `plain_every` is a plain CSV, the others base64 (as OpenAI serves newer jobs).
    Returns each result file's rows."""
    rng = random.Random(seed)
    metrics: dict[str, list[dict[str, Any]]] = {}
    for n, job in enumerate(fake.jobs):
        if not isinstance(job, dict) or job.get("status") not in FINAL:
            continue
        if only is not None and job["id"] not in only:
            continue
        job_id, created = job["id"], job["created_at"]
        steps = rng.randrange(8, 40)
        events = [
            event(job_id, created + k, "info", "message", text, None)
            for k, text in enumerate(
                [
                    "Validating training file",
                    "Files validated, moving job to queued state",
                    "Fine-tuning job started",
                ]
            )
        ]
        for step in range(10, steps + 1, 10):
            data = {"step": step, "total_steps": steps, "train_loss": round(rng.uniform(0.1, 2), 5)}
            events.append(event(job_id, created + 10 + step, "info", "metrics", f"Step {step}/{steps}", data))
        ending = {"succeeded": "The job has successfully completed", "failed": "The job failed"}
        events.append(
            event(job_id, created + 900, "info", "message", ending.get(job["status"], "cancelled"), {})
        )
        fake.events[job_id] = events[::-1]  # newest first
        fake.checkpoints[job_id] = [
            checkpoint(job, created + 800 - k, steps - k * 3, rng)
            for k in range(3 if job["status"] == "succeeded" else 0)
        ]
        for file_id, purpose, name in (
            (job.get("training_file"), "fine-tune", "train.jsonl"),
            (job.get("validation_file"), "fine-tune", "valid.jsonl"),
        ):
            if isinstance(file_id, str) and file_id:
                fake.files[file_id] = file_meta(
                    file_id, purpose, name, created - 60, rng.randrange(1000, 10**7)
                )
        method = (job.get("method") or {}).get("type")
        kind = method if method in COLUMNS else rng.choice(["openai", "azure"])
        for file_id in job.get("result_files") or []:
            rows = result_rows(rng, COLUMNS[kind], steps)
            text = csv_text(COLUMNS[kind], rows)
            body = text.encode() if n % plain_every == 0 else base64.b64encode(text.encode())
            fake.contents[file_id] = body
            fake.files[file_id] = file_meta(
                file_id, "fine-tune-results", "step_metrics.csv", created + 900, len(body)
            )
            metrics[file_id] = rows
    return metrics


def event(job_id: str, at: int, level: str, kind: str, message: str, data: Any) -> dict[str, Any]:
    return {
        "id": f"ftevent-{job_id[-10:]}{at}{kind[0]}",
        "object": "fine_tuning.job.event",
        "created_at": at,
        "level": level,
        "message": message,
        "type": kind,
        "data": data,
    }


def checkpoint(job: dict[str, Any], at: int, step: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"ftckpt_{job['id'][-10:]}{step}",
        "object": "fine_tuning.job.checkpoint",
        "created_at": at,
        "fine_tuned_model_checkpoint": f"ft:{job['model']}:org-fake::{job['id'][-6:]}:ckpt-step-{step}",
        "fine_tuning_job_id": job["id"],
        "step_number": step,
        "metrics": {"step": step, "train_loss": round(rng.uniform(0.1, 1), 5), "valid_loss": 1},
    }


def file_meta(file_id: str, purpose: str, name: str, created: int, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "filename": name,
        "purpose": purpose,
        "status": "processed",
    }
