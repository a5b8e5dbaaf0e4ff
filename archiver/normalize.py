"""Provider shapes -> the archive's canonical values (seconds, status_class, integers, ...); pure.

Portkey passes each provider's list through its own transform, imperfectly: Bedrock, Vertex AI and
Fireworks send milliseconds, Vertex sends int64 fields as strings and an integer error code,
Fireworks ends a job with `completed_at`, Azure's statuses arrive unmapped. `job()` turns one job
of any of these shapes into the values the typed columns hold; the caller keeps the job as
received in `raw`. A value of the wrong type becomes None, and `Notes` counts it: one warning per
(field, reason) at the end of a run, never one per job. Nothing here can raise on a job's content.
"""

import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

JSONObj = dict[str, Any]
MS_THRESHOLD = 10**11  # seconds reach 10^11 in the year 5138; milliseconds passed it in 1973
INT64 = range(-(2**63), 2**63)
IN_FLIGHT_CLASSES = ("queued", "running")
TERMINAL_CLASSES = ("succeeded", "failed", "cancelled")

# Every status name seen from the providers behind Portkey, lower-cased, with any JOB_STATE_
# prefix and every non-letter removed: validating_files -> validatingfiles, notRunning -> notrunning.
STATUS_CLASSES = {
    "queued": (
        "validatingfiles",  # OpenAI
        "queued",
        "paused",  # OpenAI and Vertex: waits to be resumed
        "pending",  # Azure, Vertex, Fireworks
        "created",  # Azure
        "notrunning",  # Azure (older API versions)
        "creating",  # Fireworks
        "validating",  # Fireworks
    ),
    "running": (
        "running",
        "inprogress",  # Bedrock
        "updating",  # Vertex
        "writingresults",  # Fireworks
        "cancelling",  # Vertex: still moving; its final state is yet to come
        "stopping",  # Bedrock
    ),
    "succeeded": ("succeeded", "completed", "partiallysucceeded"),  # Bedrock, Fireworks / Vertex
    "failed": ("failed",),
    "cancelled": ("cancelled", "canceled", "stopped", "expired", "deleted", "deleting"),
}
STATUS_CLASS = {name: cls for cls, names in STATUS_CLASSES.items() for name in names}
STATUS_KEY = re.compile(r"[^a-z]")


def status_class(status: Any) -> str:
    """queued, running, succeeded, failed, cancelled, or unknown."""
    if not isinstance(status, str):
        return "unknown"
    cls = STATUS_CLASS.get(status)
    if cls is None:
        key = STATUS_KEY.sub("", status.lower().removeprefix("job_state_"))
        cls = STATUS_CLASS.get(key, "unknown")
    return cls


def in_flight(status: str | None, cls: str) -> bool:
    """Still moving, so worth seeing again. A status string we cannot classify counts as moving;
    a status that is not a string at all (None here) can never be judged, so it does not."""
    return cls in IN_FLIGHT_CLASSES or (cls == "unknown" and status is not None)


@dataclass
class Notes:
    """What a run had to correct or drop, counted per (field, reason), with one example job."""

    counts: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    level: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False
    )  # fetcher and writer

    def add(self, job_id: str, name: str, reason: str, level: int = logging.WARNING) -> None:
        key = (name, reason)
        with self.lock:
            seen = self.counts.get(key)
            if seen is None:
                self.counts[key] = [1, job_id]
                self.level[key] = level
            else:
                seen[0] += 1

    def flush(self) -> None:
        """Log each (field, reason) once, then forget them."""
        with self.lock:
            noted, levels = sorted(self.counts.items()), dict(self.level)
            self.counts.clear()
            self.level.clear()
        for (name, reason), (count, example) in noted:
            jobs = f"{count:,} job{'s' if count != 1 else ''}"
            log.log(levels[(name, reason)], "%s: %s %s (e.g. job %s)", jobs, name, reason, example)


def type_name(value: Any) -> str:
    return (
        "a list"
        if isinstance(value, list)
        else "an object"
        if isinstance(value, dict)
        else type(value).__name__
    )


Warn = Callable[[str, str], None]


def text(value: Any, name: str, warn: Warn) -> str | None:
    """A string for a text column; PostgreSQL text holds no NUL and no lone surrogate: U+FFFD there."""
    if value is None:
        return None
    if type(value) is not str:
        warn(name, f"is {type_name(value)}, not text; column left NULL (raw keeps it)")
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return str(value)


INTEGER_TEXT = re.compile(r"-?\d{1,19}")


def integer(value: Any, name: str, warn: Warn) -> int | None:
    """An integer column: ints, integer-valued floats and integer strings ("60000", as Vertex sends)."""
    if value is None:
        return None
    if (type(value) is str and INTEGER_TEXT.fullmatch(value.strip())) or (
        type(value) is float and value.is_integer()
    ):
        value = int(value)
    if type(value) is not int:
        warn(name, f"is {type_name(value)}, not an integer; column left NULL (raw keeps it)")
        return None
    if value not in INT64:
        warn(name, "is beyond 64 bits; column left NULL (raw keeps it)")
        return None
    return value


def timestamp(value: Any, name: str, warn: Warn) -> int | None:
    """Unix seconds from seconds, milliseconds (any value above 10^11) or an ISO-8601 string."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < MS_THRESHOLD:
        return value  # the common case, first
    if type(value) is str and not INTEGER_TEXT.fullmatch(value.strip()):
        try:
            when = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            warn(name, "is text that is not a time; column left NULL (raw keeps it)")
            return None
        warn(name, "was an ISO-8601 time; stored as Unix seconds")
        return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    if type(value) is float and math.isfinite(value) and not value.is_integer():
        value = math.floor(value)  # fractional seconds: the whole seconds (raw keeps the fraction)
    seconds = integer(value, name, warn)
    if seconds is not None and abs(seconds) >= MS_THRESHOLD:
        warn(name, "was in milliseconds; stored as Unix seconds")
        return seconds // 1000
    return seconds


def hyperparameter(value: Any, name: str, warn: Warn) -> str | None:
    """`auto` or the number as sent, as text (Vertex's "3" and ADAPTER_SIZE_FOUR alike)."""
    if value is None or type(value) is str:
        return text(value, name, warn)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    warn(name, f"is {type_name(value)}, not a number or text; column left NULL (raw keeps it)")
    return None


def member(obj: Any, key: str, name: str, warn: Warn) -> JSONObj | None:
    """obj[key] when it is an object; None when absent or null; a warning for anything else."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None or isinstance(value, dict):
        return value
    warn(name, f"is {type_name(value)}, not an object; ignored (raw keeps it)")
    return None


def items(obj: JSONObj, key: str, warn: Warn) -> list[Any]:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value or []
    warn(key, f"is {type_name(value)}, not a list; ignored (raw keeps it)")
    return []


TEXT_FIELDS = (
    "object",
    "model",
    "fine_tuned_model",
    "organization_id",
    "training_file",
    "validation_file",
    "user_provided_suffix",
)
INT_FIELDS = ("trained_tokens", "seed")
TIME_FIELDS = ("created_at", "finished_at", "estimated_finish")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def job(raw: JSONObj, notes: Notes, provider: str = "unknown") -> JSONObj:
    """The canonical values of one job: the typed columns, plus `error`, `result_files` and
    `integrations` ready for the child tables. `raw` must have a non-empty string `id`."""
    job_id = raw["id"]

    def warn(name: str, reason: str) -> None:
        level = logging.INFO if reason.startswith(("was in milliseconds", "was an ISO")) else logging.WARNING
        notes.add(job_id, name, reason, level)

    out: JSONObj = {"id": text(job_id, "id", warn), "provider": provider}
    for key in TEXT_FIELDS:  # the common case inline: this runs for every field of every job
        v = raw.get(key)
        out[key] = (
            v if v is None or (type(v) is str and v.isascii() and "\x00" not in v) else text(v, key, warn)
        )
    out["status"] = text(raw.get("status"), "status", warn)
    out["status_class"] = status_class(out["status"])
    for key in INT_FIELDS:
        v = raw.get(key)
        out[key] = v if v is None or (type(v) is int and -(2**63) <= v < 2**63) else integer(v, key, warn)
    for key in TIME_FIELDS:
        v = raw.get(key)
        out[key] = v if v is None or (type(v) is int and 0 <= v < MS_THRESHOLD) else timestamp(v, key, warn)
    if out["finished_at"] is None and raw.get("completed_at") is not None:  # Fireworks
        out["finished_at"] = timestamp(raw["completed_at"], "completed_at", warn)
    method = member(raw, "method", "method", warn) or {}
    out["method_type"] = text(method.get("type"), "method.type", warn)
    sub = (
        member(method, out["method_type"], f"method.{out['method_type']}", warn)
        if out["method_type"]
        else None
    )
    hp = member(sub, "hyperparameters", "method hyperparameters", warn)
    if hp is None:
        hp = member(raw, "hyperparameters", "hyperparameters", warn) or {}
    for key in HYPERPARAMETERS:
        out[key] = hyperparameter(hp.get(key), key, warn)
    out["metadata"] = member(raw, "metadata", "metadata", warn)
    out["error"] = error(raw, warn)
    out["result_files"] = [text(f, "result_files[]", warn) for f in items(raw, "result_files", warn)]
    out["integrations"] = [integration(i, warn) for i in items(raw, "integrations", warn)]
    return out


def error(raw: JSONObj, warn: Warn) -> JSONObj | None:
    """A real error only: the API also sends null, {} and all-null members. An integer code
    (Vertex: a google.rpc code) becomes its text; a string (Bedrock's single-job GET) is the message."""
    if type(raw.get("error")) is str:
        message = text(raw["error"], "error", warn)
        return {"code": None, "message": message, "param": None} if message else None
    err = member(raw, "error", "error", warn)
    if not err:
        return None
    code = err.get("code")
    if type(code) is int:
        code = str(code)
    values = {"code": text(code, "error.code", warn)}
    values.update((k, text(err.get(k), f"error.{k}", warn)) for k in ("message", "param"))
    if values["code"] is None and values["message"] is None:
        return None
    return values


def integration(item: Any, warn: Warn) -> JSONObj:
    if not isinstance(item, dict):
        warn("integrations[]", f"is {type_name(item)}, not an object; kept as its settings")
    wandb = member(item, "wandb", "integrations[].wandb", warn) or {}
    tags = items(wandb, "tags", warn)
    return {
        "type": text(item.get("type"), "integrations[].type", warn) if isinstance(item, dict) else None,
        "wandb_project": text(wandb.get("project"), "wandb.project", warn),
        "wandb_name": text(wandb.get("name"), "wandb.name", warn),
        "wandb_entity": text(wandb.get("entity"), "wandb.entity", warn),
        "settings": item,
        "tags": [text(t, "wandb.tags[]", warn) for t in tags],
    }


# What a job means, as the change test compares it (store.content_hash): the job as received, less
# what depends on the route that served it. Through the gateway (1.15.2) the list passes the
# provider's body on, but a single-job GET may say the same job differently:
# - openai: the GET is re-serialized by JavaScript (`2.0` -> `2`, `1e-05` -> `0.00001`); numbers
#   compare by value anyway (store.canonical_json writes each number in one form), nothing to drop.
# - azure-openai: the GET renames `created` and `pending` to `queued`; the list keeps Azure's names.
#   All three mean `queued` here, so a job moving between `created` and `pending` is no change.
# - bedrock: the list is built from Bedrock's job summaries, the GET from the full job, through the
#   same mapping: only the GET fills the training and validation files and the hyperparameters (the
#   list sends "", "" and nulls), only the GET sends the failure message as `error` (the list: {}),
#   `fine_tuned_model` is the output model's name from the GET but absent from the list while the job
#   runs, and `suffix` (customModelName) is in the summary but not in a real GET. Those members are
#   not compared: Bedrock's history changes with its status, its times and its name. The cost: a
#   GET of a job whose meaning is unchanged writes nothing, so jobs.raw keeps the list's copy.
# - vertex-ai, fireworks-ai: the same mapping of the same record on both routes.
# Numbers beyond 2^53 compare as the double they round to, as the gateway's JSON.parse reads them.
ROUTE_RENAMES: dict[str, dict[str, dict[Any, Any]]] = {
    "azure-openai": {"status": {"created": "queued", "pending": "queued"}},
}
ROUTE_OMITS: dict[str, tuple[str, ...]] = {
    "bedrock": ("fine_tuned_model", "suffix", "training_file", "validation_file", "hyperparameters", "error"),
}


def meaning(raw: JSONObj, provider: str) -> JSONObj:
    """The job as received, with the members that differ by route only (ROUTE_RENAMES, ROUTE_OMITS)
    made one: what a change of the job is a change of."""
    renames, omits = ROUTE_RENAMES.get(provider), ROUTE_OMITS.get(provider)
    if renames is None and omits is None:
        return raw
    job = {k: v for k, v in raw.items() if k not in omits} if omits else raw
    for key, names in (renames or {}).items():
        value = job.get(key)
        if type(value) is str and value in names:
            job = {**job, key: names[value]}  # never the caller's dict
    return job
