"""A peer contender: the jobs loaded with sqlite-utils, the way dogsheep/github-to-sqlite loads an API.

    python benchmarks/sqlite_utils_loader.py BASE_URL ARCHIVE.db [LIMIT]

Paged GET with httpx (`limit`, `after=<id of the last job>`, until `has_more` is false). Per page,
in one `db.atomic()` transaction: `db["jobs"].upsert_all(rows, pk="id", alter=True)`, then the
page's children in result_files, integrations, tags and errors replaced (the page's job ids
deleted, the new rows inserted). sqlite-utils creates every table from the data; nested objects
(hyperparameters, method, metadata, an integration's wandb settings) are stored as the JSON text
sqlite-utils writes for dict values. WAL, as archiver and the floor use; `synchronous` is left at
SQLite's default (FULL, as the floor sets it). No history, no run log, no retries, no validation.
Needs the `bench` extra (`pip install -e '.[bench]'`).
"""

import os
import sys

import httpx
import sqlite_utils

CHILDREN = ("tags", "integrations", "result_files", "errors")
CHILD_PKS = {
    "errors": "job_id",
    "result_files": ("job_id", "position"),
    "integrations": ("job_id", "position"),
    "tags": ("job_id", "integration_position", "position"),
}


def page_rows(page: list[dict]) -> tuple[list[dict], dict[str, list[dict]]]:
    """The jobs without their list-valued fields, and those fields as child rows."""
    jobs: list[dict] = []
    children: dict[str, list[dict]] = {name: [] for name in CHILDREN}
    for job in page:
        row = dict(job)
        files = row.pop("result_files", None)
        integrations = row.pop("integrations", None)
        error = row.pop("error", None)
        jobs.append(row)
        if error and (error.get("code") or error.get("message")):
            children["errors"].append({"job_id": job["id"], **error})
        children["result_files"] += [
            {"job_id": job["id"], "position": i, "file_id": f} for i, f in enumerate(files or [])
        ]
        for i, integ in enumerate(integrations or []):
            children["integrations"].append(
                {"job_id": job["id"], "position": i, "type": integ.get("type"), "wandb": integ.get("wandb")}
            )
            children["tags"] += [
                {"job_id": job["id"], "integration_position": i, "position": k, "tag": t}
                for k, t in enumerate((integ.get("wandb") or {}).get("tags") or [])
            ]
    return jobs, children


def save_page(db: sqlite_utils.Database, page: list[dict]) -> None:
    jobs, children = page_rows(page)
    ids = [j["id"] for j in jobs]
    with db.atomic():
        db["jobs"].upsert_all(jobs, pk="id", alter=True)
        for name in CHILDREN:
            db[name].delete_where(f"job_id in ({', '.join('?' * len(ids))})", ids)
        for name in reversed(CHILDREN):  # parents of tags first
            db[name].insert_all(
                children[name], pk=CHILD_PKS[name], foreign_keys=[("job_id", "jobs", "id")], alter=True
            )


def main() -> None:
    base, path = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    headers = {
        "x-portkey-api-key": os.environ["PORTKEY_API_KEY"],
        "x-portkey-virtual-key": os.environ["PORTKEY_VIRTUAL_KEY"],
    }
    db = sqlite_utils.Database(path)
    db.enable_wal()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        params: dict[str, str | int] = {"limit": limit}
        while True:
            response = client.get("/fine_tuning/jobs", params=params)
            response.raise_for_status()
            body = response.json()
            save_page(db, body["data"])
            if not body["has_more"]:
                break
            params["after"] = body["data"][-1]["id"]
    db.close()


if __name__ == "__main__":
    main()
