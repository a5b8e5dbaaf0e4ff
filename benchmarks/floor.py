"""The floor: the least work any archiver can do. Standard library only.

    python benchmarks/floor.py BASE_URL ARCHIVE.db [LIMIT]

One keep-alive http.client connection, json.loads, and per page one sqlite3 transaction that
upserts the jobs (executemany) and replaces their children in the same five tables archiver
uses. No history, no run log, no change detection, no retries, no validation. The archive must
already have archiver's schema (`archiver db upgrade`).
"""

import http.client
import json
import os
import sqlite3
import sys
import time
from urllib.parse import urlsplit

JOB_COLUMNS = (
    "id",
    "object",
    "created_at",
    "finished_at",
    "estimated_finish",
    "status",
    "model",
    "fine_tuned_model",
    "organization_id",
    "trained_tokens",
    "training_file",
    "validation_file",
    "seed",
    "user_provided_suffix",
)
UPSERT = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}, method_type, n_epochs, batch_size,"
    " learning_rate_multiplier, metadata, raw, content_hash, first_seen_at, last_seen_at)"
    f" VALUES ({', '.join('?' * (len(JOB_COLUMNS) + 9))})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in (
            *JOB_COLUMNS[1:],
            "method_type",
            "n_epochs",
            "batch_size",
            "learning_rate_multiplier",
            "metadata",
            "raw",
            "last_seen_at",
        )
    )
)


def text(v: object) -> str | None:
    return None if v is None else str(v)


def rows(page: list[dict], now: float) -> tuple[list, list, list, list, list]:
    jobs, errors, files, integrations, tags = [], [], [], [], []
    for j in page:
        method = j.get("method") or {}
        hp = (method.get(method.get("type")) or {}).get("hyperparameters") or j.get("hyperparameters") or {}
        jobs.append(
            (
                *(j.get(c) for c in JOB_COLUMNS),
                method.get("type"),
                text(hp.get("n_epochs")),
                text(hp.get("batch_size")),
                text(hp.get("learning_rate_multiplier")),
                json.dumps(j.get("metadata")),
                json.dumps(j),
                "",
                now,
                now,
            )
        )
        err = j.get("error") or {}
        if err.get("code") or err.get("message"):
            errors.append((j["id"], err.get("code"), err.get("message"), err.get("param")))
        files += [(j["id"], i, f) for i, f in enumerate(j.get("result_files") or [])]
        for i, integ in enumerate(j.get("integrations") or []):
            w = integ.get("wandb") or {}
            integrations.append(
                (
                    j["id"],
                    i,
                    integ.get("type"),
                    w.get("project"),
                    w.get("name"),
                    w.get("entity"),
                    json.dumps(integ),
                )
            )
            tags += [(j["id"], i, k, t) for k, t in enumerate(w.get("tags") or [])]
    return jobs, errors, files, integrations, tags


def main() -> None:
    base, path = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    headers = {
        "x-portkey-api-key": os.environ["PORTKEY_API_KEY"],
        "x-portkey-virtual-key": os.environ["PORTKEY_VIRTUAL_KEY"],
    }
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    after = None
    while True:
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        conn.request("GET", f"{url.path}/fine_tuning/jobs{query}", headers=headers)
        body = json.loads(conn.getresponse().read())
        page = body["data"]
        jobs, errors, files, integrations, tags = rows(page, time.time())
        ids = [(j[0],) for j in jobs]
        db.execute("BEGIN IMMEDIATE")
        for table in ("tags", "integrations", "result_files", "errors"):
            db.executemany(f"DELETE FROM {table} WHERE job_id = ?", ids)
        db.executemany(UPSERT, jobs)
        db.executemany("INSERT INTO errors VALUES (?, ?, ?, ?)", errors)
        db.executemany("INSERT INTO result_files VALUES (?, ?, ?)", files)
        db.executemany("INSERT INTO integrations VALUES (?, ?, ?, ?, ?, ?, ?)", integrations)
        db.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)", tags)
        db.execute("COMMIT")
        if not body["has_more"]:
            break
        after = page[-1]["id"]


if __name__ == "__main__":
    main()
