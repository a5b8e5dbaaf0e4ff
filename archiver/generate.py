"""Realistic histories of fine-tuning jobs, for the fake API: the tests' and `archiver demo`'s one source."""

import random
from typing import Any

HOSTILE = [
    'it\'s "quoted"',
    "'; DROP TABLE jobs;--",
    "tab\tand\nnewline\r\n",
    "emoji 🚀🧪",
    "中文 日本語 한국어",
    "line\u2028separator",
    "nul\u0000byte",
]
IN_FLIGHT = ("validating_files", "queued", "running")


# For `archiver demo`: ordinary text in place of HOSTILE, base models of several providers. Same
# lengths as HOSTILE and MODELS, so that a seed draws the same history in both modes.
PLAIN = ["nightly", "support-bot", "eval-v2", "summarizer", "triage", "sql-helper", "classifier"]
MODELS = ["gpt-4o-mini-2024-07-18", "gpt-4.1-nano-2025-04-14", "gpt-3.5-turbo-0125"]
DEMO_MODELS = ["gpt-4o-mini-2024-07-18", "llama-v3p1-8b-instruct", "gemini-1.5-flash-002"]
# In the demo each base model trains at its own pace (a bigger model or a busier queue takes longer),
# and a job that fails or is cancelled stops part of the way through.
PACE = {"gpt-4o-mini-2024-07-18": 1.0, "llama-v3p1-8b-instruct": 2.6, "gemini-1.5-flash-002": 0.55}
STOPPED_EARLY = {"failed": 0.3, "cancelled": 0.5}
# The demo's failures, as providers word them, by error code.
FAILURES = {
    "invalid_training_file": [
        "Invalid file format: line 214 of the training file is not valid JSON.",
        "Training file has 3 examples longer than the model's 65,536-token context.",
        "Training file has 7 examples, but at least 10 are required.",
        "Each example must hold a 'messages' list; line 88 has none.",
    ],
    "server_error": [
        "The job failed due to an internal error. Please try again.",
        "Training was interrupted by a hardware failure; no checkpoint was saved.",
        "Fine-tuning quota exceeded for this organization; retry after the quota resets.",
    ],
}


def demo_duration(model: str, status: str, base: int) -> int:
    """Seconds from creation to the end of a demo job: `base` at the model's pace, shorter if it stopped."""
    return int(base * PACE.get(model, 1.0) * STOPPED_EARLY.get(status, 1.0))


def make_job(
    i: int, rng: random.Random, now: int, status: str | None = None, plain: bool = False, spacing: int = 600
) -> dict[str, Any]:
    """A realistic job; `i` is its age rank (0 = newest), `spacing` seconds between two jobs. Text
    fields include HOSTILE strings unless `plain`."""
    texts = PLAIN if plain else HOSTILE
    created = now - spacing * i - rng.randrange(300)
    if status is None:
        status = (
            rng.choice(IN_FLIGHT)
            if i < 5
            else rng.choices(["succeeded", "failed", "cancelled"], weights=[7, 2, 1])[0]
        )
    model = rng.choice(DEMO_MODELS if plain else MODELS)
    job: dict[str, Any] = {
        "id": f"ftjob-{i:06d}{rng.randrange(16**6):06x}",
        "object": "fine_tuning.job",
        "created_at": created,
        "error": rng.choice([None, {}, {"code": None, "message": None, "param": None}]),
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": None
        if i % 7 == 0
        else {
            "n_epochs": rng.choice(["auto", 3, 4]),
            "batch_size": rng.choice(["auto", 8]),
            "learning_rate_multiplier": rng.choice(["auto", 0.1, 2]),
        },
        "model": model,
        "organization_id": "org-fake",
        "result_files": [],
        "seed": rng.randrange(2**31),
        "status": status,
        "trained_tokens": None,
        "training_file": f"file-train{i}",
        "validation_file": rng.choice([None, f"file-valid{i}"]),
        "estimated_finish": created + 3600 if status == "running" else None,
        "integrations": [],
        "metadata": None,
        "user_provided_suffix": rng.choice([None, "nightly", texts[i % len(texts)]]),
    }
    if i % 3 == 0:
        method = rng.choice(["supervised", "dpo"])
        hp = {
            "n_epochs": rng.choice(["auto", 2]),
            "batch_size": rng.choice(["auto", 16]),
            "learning_rate_multiplier": rng.choice(["auto", 0.5]),
        }
        if method == "dpo":
            hp["beta"] = 0.1
        job["method"] = {"type": method, method: {"hyperparameters": hp}}
    if i % 4 == 0:
        job["integrations"] = [
            {
                "type": "wandb",
                "wandb": {
                    "project": rng.choice(["ft-proj", "évals"]),
                    "name": None if i % 8 else f"run-{i}",
                    "entity": rng.choice([None, "team-ml"]),
                    "tags": [f"tag-{k}" for k in range(rng.randrange(4))]
                    + ([texts[i % len(texts)]] if i % 12 == 0 else []),
                },
            }
        ]
    if i % 5 == 0:
        job["metadata"] = {"team": "research", "note": texts[i % len(texts)]}
    if i % 6 == 0:
        job["shared_with_openai"] = False
        job["usage_metrics"] = None
    if status in ("succeeded", "failed", "cancelled"):
        base = 900 + rng.randrange(3000)
        job["finished_at"] = created + (demo_duration(model, status, base * 3) if plain else base)
    if status == "succeeded":
        job["fine_tuned_model"] = f"ft:{model}:org-fake::{i:06d}"
        job["trained_tokens"] = rng.randrange(10_000, 5_000_000)
        job["result_files"] = [f"file-result{i}-{k}" for k in range(rng.randrange(1, 3))]
    if status == "failed":
        code = rng.choice(["invalid_training_file", "server_error"])
        message = rng.choice(["Training file has 3 bad lines", texts[i % len(texts)]])
        if plain:  # the same draws as the tests' histories, and words a provider would use
            message = FAILURES[code][i % len(FAILURES[code])]
        job["error"] = {"code": code, "message": message, "param": rng.choice([None, "training_file"])}
    return job


def make_jobs(
    n: int, seed: int = 0, now: int = 1_790_000_000, plain: bool = False, spacing: int = 600
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_job(i, rng, now, plain=plain, spacing=spacing) for i in range(n)]


def add_new_jobs(jobs: list[dict[str, Any]], n: int, rng: random.Random, plain: bool = False) -> None:
    """n new jobs at the head, newer than every job there, some still in flight."""
    newest = max((j["created_at"] for j in jobs), default=1_790_000_000)
    for k in range(n):
        status = rng.choice(IN_FLIGHT) if rng.random() < 0.15 else rng.choice(["succeeded", "failed"])
        job = make_job(0, rng, newest + 600 * (n - k), status=status, plain=plain)
        job["id"] = f"ftjob-new{rng.randrange(16**12):012x}"
        jobs.insert(k, job)


def finish_job(
    job: dict[str, Any], status: str = "succeeded", seconds: int = 1200, message: str = "The job failed"
) -> None:
    """Move an in-flight job to a terminal status `seconds` after its creation, filling in what the
    API fills in (a failure's `message`)."""
    job.update(status=status, finished_at=job["created_at"] + seconds, estimated_finish=None)
    if status == "succeeded":
        job.update(
            fine_tuned_model=f"ft:{job['model']}:org-fake::{job['id'][-6:]}",
            trained_tokens=123_456,
            result_files=[f"file-result-{job['id'][-6:]}"],
        )
    elif status == "failed":
        job["error"] = {"code": "server_error", "message": message, "param": None}
