"""A job's details as rows (pure mappings) and their write: one transaction per job."""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from archiver import chain, normalize, results
from archiver.detail_models import (
    DETAIL_TABLES,
    file_contents,
    files,
    job_checkpoints,
    job_details,
    job_events,
    job_metric_summary,
    job_metrics,
    rejected_details,
)
from archiver.models import result_files
from archiver.store import JSONObj, chunks

RETRY_BASE = 900.0  # a failed job's details are tried again 15 min later, then 30 min, ... up to a day
RETRY_MAX = 86400.0
# The result-file columns of the metrics a job's summary reads (migration 0010's job_metric_steps)
SUMMED_UP = {
    "train_loss": "train_loss",
    "train_accuracy": "train_accuracy",
    "train_mean_token_accuracy": "train_accuracy",
    "valid_loss": "valid_loss",
}


@dataclass
class Fetched:
    """What the API gave for one job. `error`: a failure worth trying again later (nothing of the
    job is written but its files); `missing`: what it cannot give and why (kept, not retried)."""

    job_id: str
    events: list[Any] | None = None
    checkpoints: list[Any] | None = None
    files: dict[str, JSONObj | None] = field(default_factory=dict)  # id -> metadata, None: 404
    contents: dict[str, Any] = field(default_factory=dict)  # id -> detail_api.Content, None: 404
    missing: list[str] = field(default_factory=list)
    error: str | None = None


def quiet(_name: str, _reason: str) -> None:
    """Details keep `raw`: a value of the wrong type leaves its column NULL without a note."""


def text(value: Any) -> str | None:
    return normalize.text(value, "", quiet)


def event_row(job_id: str, e: JSONObj) -> JSONObj:
    created = normalize.timestamp(e.get("created_at"), "", quiet)
    level, kind, message = (text(e.get(k)) for k in ("level", "type", "message"))
    return {"job_id": job_id, "id": text(e["id"]), "created_at": created, "level": level, "type": kind} | {
        "message": message,
        "data": e.get("data"),
        "raw": e,
    }


def checkpoint_row(job_id: str, c: JSONObj) -> JSONObj:
    metrics = c.get("metrics")
    return {
        "job_id": job_id,
        "id": text(c["id"]),
        "created_at": normalize.timestamp(c.get("created_at"), "", quiet),
        "step_number": normalize.integer(c.get("step_number"), "", quiet),
        "fine_tuned_model_checkpoint": text(c.get("fine_tuned_model_checkpoint")),
        "metrics": metrics if isinstance(metrics, dict) else None,
        "raw": c,
    }


def file_row(file_id: str, f: JSONObj | None, now: float) -> JSONObj:
    ok = isinstance(f, dict) and f.get("id") == file_id
    g = f if ok and isinstance(f, dict) else {}
    missing = None if ok else "gone upstream (404)" if f is None else "the API answered with another object"
    return {
        "id": file_id,
        "filename": text(g.get("filename")),
        "bytes": normalize.integer(g.get("bytes"), "", quiet),
        "purpose": text(g.get("purpose")),
        "created_at": normalize.timestamp(g.get("created_at"), "", quiet),
        "status": text(g.get("status")),
        "raw": f,
        "missing": missing,
        "fetched_at": now,
    }


def content_row(file_id: str, c: Any, max_bytes: int, now: float) -> JSONObj:
    row: JSONObj = {"file_id": file_id, "content": None, "size": None, "sha256": None, "content_type": None}
    row |= {"encoding": None, "note": None, "fetched_at": now}
    if c is None:
        return row | {"note": "gone upstream (404)"}
    row |= {"size": c.size, "content_type": c.content_type}
    if c.body is None:
        cap = f"{max_bytes / 1e6:g} MB"
        return row | {"note": f"{c.size:,} bytes, over the {cap} cap (--details-max-bytes): not kept"}
    return row | {"content": c.body, "sha256": chain.sha256(c.body)}


def split(job_id: str, kind: str, items: list[Any]) -> tuple[list[JSONObj], list[JSONObj]]:
    """Items with a string id (each id once, the first kept), and the others as rejects."""
    good: dict[str, JSONObj] = {}
    bad = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            good.setdefault(item["id"], item)
        else:
            why = "not a JSON object" if not isinstance(item, dict) else "no id, or an id that is not text"
            bad.append(reject(job_id, kind, None, None, why, json.dumps(item, ensure_ascii=False)))
    return list(good.values()), bad


def reject(job_id: str, kind: str, file_id: str | None, line: int | None, reason: str, raw: str) -> JSONObj:
    return {
        "job_id": job_id,
        "kind": kind,
        "file_id": file_id,
        "line": line,
        "reason": reason,
        "raw": text(raw),
    }


def insert_new(conn: Connection, table: Table, rows: list[JSONObj]) -> None:
    """Insert the rows whose key is not there yet (a file is fetched once, by whichever job)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as backend
    else:
        from sqlalchemy.dialects.sqlite import insert as backend  # type: ignore[assignment]
    conn.execute(backend(table).on_conflict_do_nothing(), rows)


def save_state(conn: Connection, row: JSONObj) -> None:
    conn.execute(delete(job_details).where(job_details.c.job_id == row["job_id"]))
    conn.execute(insert(job_details), [row])


def save_files(conn: Connection, f: Fetched, max_bytes: int, now: float) -> None:
    insert_new(conn, files, [file_row(i, meta, now) for i, meta in f.files.items()])
    insert_new(conn, file_contents, [content_row(i, c, max_bytes, now) for i, c in f.contents.items()])


def save_job(conn: Connection, f: Fetched, run_id: int, attempts: int, max_bytes: int, now: float) -> int:
    """One job's details in the caller's transaction; returns the rows rejected. On `f.error` only
    its files are kept and the job is to be tried again, later each time."""
    save_files(conn, f, max_bytes, now)
    state = {"job_id": f.job_id, "attempts": attempts + 1, "fetched_at": now, "sync_run_id": run_id}
    if f.error is not None:
        wait = min(RETRY_MAX, RETRY_BASE * 2**attempts)
        save_state(conn, state | {"state": "retry", "next_try_at": now + wait, "error": f.error})
        return 0
    events, bad = split(f.job_id, "event", f.events or [])
    checkpoints, bad_checkpoints = split(f.job_id, "checkpoint", f.checkpoints or [])
    metrics, bad_rows = parse_results(conn, f.job_id)
    for table in DETAIL_TABLES:
        conn.execute(delete(table).where(table.c.job_id == f.job_id))
    summed_up = summary(f.job_id, ((m["step"], m["metric"], m["value"]) for m in metrics))
    for table, rows in (
        (job_events, [event_row(f.job_id, e) for e in events]),
        (job_checkpoints, [checkpoint_row(f.job_id, c) for c in checkpoints]),
        (job_metrics, metrics),
        (job_metric_summary, [summed_up] if summed_up else []),
        (rejected_details, bad + bad_checkpoints + bad_rows),
    ):
        if rows:
            conn.execute(insert(table), rows)
    missing = "; ".join(f.missing) or None
    save_state(conn, state | {"state": "done", "next_try_at": None, "error": missing})
    chain.append_details(conn, f.job_id, run_id, now)
    return len(bad) + len(bad_checkpoints) + len(bad_rows)


def summary(job_id: str, metrics: Iterable[tuple[int, str, float]]) -> JSONObj | None:
    """A job's curve summed up from its (step, metric, value) rows, as job_final_metrics shows it:
    how many steps, the last one's train loss and accuracy, the best validation loss and the first
    step that reached it, and the validation loss of the last step that has one. A metric of a step
    is the greatest of its values in the job's result files (the view job_metric_steps). None
    without metrics. Kept in job_metric_summary, so that no report reads every metric row."""
    steps: dict[int, dict[str, float]] = {}
    for step, metric, value in metrics:
        at = steps.setdefault(step, {})
        name = SUMMED_UP.get(metric)
        if name is not None and value > at.get(name, -math.inf):
            at[name] = value
    if not steps:
        return None
    final = max(steps)
    valid = {step: at["valid_loss"] for step, at in steps.items() if "valid_loss" in at}
    best = min(valid.values(), default=None)
    return {
        "job_id": job_id,
        "steps": len(steps),
        "final_step": final,
        "final_train_loss": steps[final].get("train_loss"),
        "final_train_accuracy": steps[final].get("train_accuracy"),
        "best_valid_loss": best,
        "best_valid_step": min((step for step, v in valid.items() if v == best), default=None),
        "final_valid_loss": valid[max(valid)] if valid else None,
    }


def stored_summary_differs(conn: Connection, job_id: str) -> bool:
    """Whether job_metric_summary's row of the job is not what its metric rows sum up to (verify)."""
    m = job_metrics.c
    held = conn.execute(select(m.step, m.metric, m.value).where(m.job_id == job_id))
    stored = conn.execute(select(job_metric_summary).where(job_metric_summary.c.job_id == job_id)).mappings()
    expected = summary(job_id, held)
    return [dict(r) for r in stored] != ([expected] if expected else [])


def parse_results(conn: Connection, job_id: str) -> tuple[list[JSONObj], list[JSONObj]]:
    """The metrics of the job's stored result files, and what could not be read of them; each
    file's encoding is recorded as found. Reads the archive, so that a fixed parser can run again."""
    ids = select(result_files.c.file_id).where(result_files.c.job_id == job_id)
    query = select(file_contents.c.file_id, file_contents.c.content, file_contents.c.content_type)
    metrics: list[JSONObj] = []
    bad: list[JSONObj] = []
    for file_id, body, kind in conn.execute(query.where(file_contents.c.file_id.in_(ids))):
        if body is None:
            continue
        parsed = results.parse_result_file(bytes(body), kind)
        conn.execute(
            file_contents.update().where(file_contents.c.file_id == file_id).values(encoding=parsed.encoding)
        )
        metrics += [
            {"job_id": job_id, "file_id": file_id, "step": s, "metric": text(m), "value": v}
            for s, m, v in parsed.metrics
        ]
        kind_of = "result_file" if parsed.encoding is None else "result_row"
        bad += [reject(job_id, kind_of, file_id, line, why, raw) for line, why, raw in parsed.rejects]
    return metrics, bad


def known_files(conn: Connection, ids: list[str]) -> tuple[set[str], set[str]]:
    """Of these file ids, those whose metadata, and those whose content, the archive holds."""
    meta: set[str] = set()
    content: set[str] = set()
    for chunk in chunks(ids):
        meta.update(conn.execute(select(files.c.id).where(files.c.id.in_(chunk))).scalars())
        content.update(
            conn.execute(select(file_contents.c.file_id).where(file_contents.c.file_id.in_(chunk))).scalars()
        )
    return meta, content


def metrics_by_step(conn: Connection, job_id: str) -> list[JSONObj]:
    """A job's metrics as one dict per step, in step order (Archive.metrics)."""
    m = job_metrics.c
    query = select(m.step, m.metric, m.value).where(m.job_id == job_id).order_by(m.step, m.file_id, m.metric)
    steps: dict[int, JSONObj] = {}
    for step, metric, value in conn.execute(query):
        steps.setdefault(step, {"step": step})[metric] = value
    return list(steps.values())
