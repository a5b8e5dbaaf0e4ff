"""Datasette metadata for an archive: every report as a canned query, descriptions, facets.

`datasette archive.db -m metadata.json` then serves the archive with the reports one click away.
Datasette fills a canned query's missing parameters with "" and offers magic parameters such as
`:_now_epoch` (datasette.io docs: sql_queries.rst), so the report SQL is rewritten for it: `:since` and
`:until` take a date typed in the form (blank means all time), `:now` is the request's time and
`:limit` defaults to 1000 (Datasette's own cap on returned rows). Every query runs with no input.
"""

import re
from typing import Any

from archiver import reports
from archiver.datasette_audit import AUDIT_TABLES, CHAIN
from archiver.datasette_details import DETAIL_TABLES

# SQLite (Datasette is SQLite only): a blank field is NULL, a date or ISO time becomes Unix seconds.
DATASETTE_BINDS = {
    "since": "coalesce(CAST(strftime('%s', nullif(:since, '')) AS INTEGER), 0)",
    "until": "coalesce(CAST(strftime('%s', nullif(:until, '')) AS INTEGER), 253402300799)",  # sql: < :until
    "now": ":_now_epoch",
    "limit": "coalesce(CAST(nullif(:limit, '') AS INTEGER), 1000)",
    "route": "coalesce(nullif(:route, ''), '*')",
}
PARAMETER_HELP = {
    "since": "since: a date (UTC), e.g. 2026-01-01; blank for all time",
    "until": "until: a date (UTC), excluded; blank for all time",
    "limit": "limit: how many rows at most (default 1000)",
    "job_id": "job_id: the job's id, e.g. ftjob-abc123",
    "model": "model: the base model, e.g. gpt-4o-mini-2024-07-18",
    "route": "route: one route's, e.g. openai; blank for every route",
}

JOB = {
    "id": "The API's job id (ftjob-...)",
    "object": "The API's object type, fine_tuning.job",
    "created_at": "When the job was created (Unix seconds, UTC)",
    "finished_at": "When the job finished (Unix seconds); empty while in flight",
    "estimated_finish": "The API's estimate of when a running job will finish (Unix seconds)",
    "status": "The provider's status as sent (validating_files, queued, running, succeeded, ...)",
    "status_class": "The status normalized: queued, running, succeeded, failed, cancelled or unknown",
    "provider": "Who answered: the x-portkey-provider, the route's provider, or unknown",
    "model": "The base model fine-tuned",
    "fine_tuned_model": "The model the job produced; empty unless it succeeded",
    "organization_id": "The organization that owns the job",
    "trained_tokens": "Billable tokens trained; empty unless it succeeded",
    "training_file": "The training file id",
    "validation_file": "The validation file id, if any",
    "seed": "The training seed",
    "user_provided_suffix": "The suffix given for the fine-tuned model's name",
    "method_type": "The fine-tuning method (supervised, dpo, ...), when the job says",
    "n_epochs": "Epochs: auto or the number as sent (text)",
    "batch_size": "Batch size: auto or the number as sent (text)",
    "learning_rate_multiplier": "Learning-rate multiplier: auto or the number as sent (text)",
    "metadata": "The job's metadata object (JSON)",
    "raw": "The job exactly as the API sent it (JSON)",
    "content_hash": "SHA-256 of what the job means (RFC 8785 JSON of it, less what differs by route)",
    "first_seen_at": "When archiver first saw the job (Unix seconds)",
    "last_seen_at": "When archiver last saw the job's content change (Unix seconds)",
    "last_sync_run_id": "The sync run that last wrote the job (sync_runs.id)",
    "vanished_at": "When a full sync found the job gone from the API; empty while it is listed",
}
RUN = {
    "id": "The run's number, in order of start",
    "started_at": "When the run started (Unix seconds)",
    "finished_at": "When the run ended (Unix seconds); empty while running",
    "status": "running, succeeded, failed, interrupted or abandoned (its process died)",
    "mode": "incremental (new and in-flight jobs) or full (the whole history)",
    "pages": "List pages fetched",
    "requests": "HTTP requests made, retries included",
    "jobs_seen": "Jobs the run received",
    "jobs_inserted": "Jobs archived for the first time",
    "jobs_updated": "Archived jobs whose content changed",
    "jobs_unchanged": "Jobs seen again unchanged (no write)",
    "jobs_rejected": "List items that were not jobs (see rejected_items)",
    "error": "Why the run failed, as the user was told",
    "base_url": "The API base URL the run used (never a credential)",
    "route": "The route the run synced (archiver.toml's [routes.NAME]; default: from PORTKEY_*)",
    **CHAIN,
}
UNSUMMARIZED = {"base_url", "route", *CHAIN}  # the run columns sync_run_summary leaves out
JOB_ID = {"job_id": "The job (jobs.id)"}
SUMMARY = {
    **{k: JOB[k] for k in ("id", "status", "status_class", "provider", "vanished_at", "model")},
    "vanished_utc": "vanished_at as UTC text",
    **{k: JOB[k] for k in ("fine_tuned_model", "method_type", "user_provided_suffix", "created_at")},
    "created_utc": "created_at as UTC text, YYYY-MM-DD HH:MM:SS",
    "created_month": "The month of creation, YYYY-MM (UTC)",
    "finished_at": JOB["finished_at"],
    "finished_utc": "finished_at as UTC text",
    "duration_seconds": "finished_at - created_at",
    "estimated_finish_utc": "estimated_finish as UTC text",
    "trained_tokens": JOB["trained_tokens"],
    "error_code": "The error's code, when the job failed with one",
    "error_message": "The error's message",
    "result_file_count": "How many result files the job lists",
    "wandb_project": "The Weights & Biases project of the job's first integration",
    **{k: JOB[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
}
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "jobs": ("One row per fine-tuning job, its latest content as the API sent it", JOB),
    "errors": (
        "Why a job failed: a row only when its error has a code or a message",
        {**JOB_ID, "code": "The API's error code", "message": "The message", "param": "The field at fault"},
    ),
    "result_files": (
        "The result files a job produced, in API order",
        {**JOB_ID, "position": "0-based, in API order", "file_id": "The result file's id"},
    ),
    "integrations": (
        "A job's integrations (Weights & Biases), in API order",
        {
            **JOB_ID,
            "position": "0-based, in API order",
            "type": "The integration type, e.g. wandb",
            "wandb_project": "The W&B project",
            "wandb_name": "The W&B run name",
            "wandb_entity": "The W&B entity (team or user)",
            "settings": "The integration as sent (JSON)",
        },
    ),
    "tags": (
        "The W&B tags of a job's integration",
        {
            **JOB_ID,
            "integration_position": "The integration (integrations.position)",
            "position": "0-based, in API order",
            "tag": "The tag",
        },
    ),
    "job_history": (
        "Append-only: one row when a job is first seen and one each time what it means changes",
        {
            "id": "The observation's number, in order",
            **JOB_ID,
            "sync_run_id": "The run that saw it (sync_runs.id)",
            "observed_at": "When it was seen (Unix seconds)",
            "status": "The job's status then",
            "content_hash": "The job's content hash then",
            "raw": "The job as sent then (JSON); NULL in the job's newest row, whose JSON is jobs.raw",
            "observed_via": "The route that sent it: list, or get (a single-job GET); empty before 0008",
            **CHAIN,
        },
    ),
    "sync_runs": ("Every archiver sync run, whatever its outcome", RUN),
    "job_routes": (
        "Which routes list each job: a job is one row of jobs, however many routes list it",
        {
            "route": "The route (sync_runs.route)",
            **JOB_ID,
            "first_seen_run": "The run that first listed it through this route (sync_runs.id)",
            "last_seen_run": "The run that last listed it through this route (sync_runs.id)",
        },
    ),
    "sync_gaps": (
        "Coverage: parts of the job listing that may hold jobs not archived yet; none when complete",
        {
            "id": "The gap's number",
            "after_id": "Resume the walk after this job id; empty: from the head of the listing",
            "until_id": "The archived job that ends the gap; empty: the end of the history",
            "until_created_at": "A job created before this (Unix seconds) ends the gap too",
            "opened_at": "When the gap was opened (Unix seconds)",
            "sync_run_id": "The run that last moved it (sync_runs.id)",
            "blocked_reason": "Why the route refused to page here; empty unless blocked",
            "blocked_at": "When it last refused (Unix seconds); tried again a day later",
            "route": "The route whose listing it is part of",
            "after_created_at": "When the job after_id was created, then: a job that moved is no cursor",
        },
    ),
    "run_listings": (
        "The jobs a full sync has listed so far, while it runs (emptied when it ends)",
        {
            "sync_run_id": "The run (sync_runs.id; a run is one route's)",
            **JOB_ID,
            "walk": "Who listed it: -1 a walk from the head; 0, 1, ...: the parallel segment that wrote it",
        },
    ),
    "job_refresh": (
        "How in-flight jobs are refreshed: back-off, failing GETs, an unconfirmed 404; no row: every run",
        {
            **JOB_ID,
            "due_at": "Not fetched again before this (Unix seconds); empty: every run",
            "failures": "Its GETs failed this many runs in a row",
            "failing_since": "The first of those failures (Unix seconds)",
            "error": "The last failure",
            "missing_at": "A GET answered 404 then (Unix seconds); vanished once a later run's does too",
        },
    ),
    "rejected_items": (
        "List items the API sent that were not jobs, kept as received",
        {
            "id": "The item's number",
            "sync_run_id": "The run that received it (sync_runs.id)",
            "observed_at": "When it was received (Unix seconds)",
            "page_after": "The cursor its page was fetched with",
            "position": "0-based, in the page",
            "reason": "Why it is not a job",
            "raw": "The item as received (JSON)",
        },
    ),
    "alembic_version": ("The archive's schema revision (set by the migrations)", {"version_num": "Revision"}),
    "job_summary": ("View: one row per job with readable times, duration, error and W&B project", SUMMARY),
    "job_history_fields": (
        "View: every observed version of a job with the fields that change, from its JSON"
        " (job_history.raw, or jobs.raw for the newest)",
        {
            "id": "The observation (job_history.id)",
            **JOB_ID,
            "sync_run_id": "The run that saw it (sync_runs.id)",
            "observed_at": "When it was seen (Unix seconds)",
            "observed_utc": "observed_at as UTC text",
            "status": "The job's status then",
            "content_hash": "The job's content hash then",
            "finished_at": "finished_at then (text)",
            "estimated_finish": "estimated_finish then (text)",
            "fine_tuned_model": "fine_tuned_model then",
            "trained_tokens": "trained_tokens then (text)",
            "error_code": "The error code then",
            "result_file_count": "How many result files then",
        },
    ),
    "sync_run_summary": (
        "View: one row per sync run with readable times and its duration",
        {
            **{
                k: v
                for k, v in RUN.items()
                if not k.endswith("_at") and k not in {"base_url", "route", *CHAIN}
            },
            "started_utc": "started_at as UTC text",
            "finished_utc": "finished_at as UTC text",
            "duration_seconds": "finished_at - started_at",
        },
    ),
}
TABLES.update(DETAIL_TABLES)
TABLES.update(AUDIT_TABLES)
FACETS = {
    "jobs": ["status", "status_class", "model", "provider"],
    "job_summary": ["status", "status_class", "model", "provider"],
    "sync_runs": ["route", "status", "mode"],
    "job_routes": ["route"],
    "sync_run_summary": ["status", "mode"],
    "job_details": ["state"],
    "job_events": ["level", "type"],
    "job_metrics": ["metric"],
    "files": ["purpose", "status"],
    "rejected_details": ["kind"],
    "verify_runs": ["intact"],
    "audit_chain": ["table_name"],
}
SORT_DESC = {"jobs": "created_at", "job_summary": "created_at", "sync_runs": "id", "sync_run_summary": "id"}


def metadata(database_name: str) -> dict[str, Any]:
    """Datasette metadata (`datasette FILE -m metadata.json`) for an archive.

    database_name: the name Datasette gives the archive, the file's stem (`archive` for archive.db).
    Returns a JSON-ready dict: the reports as canned queries, table, view and column descriptions, facets.
    """
    tables = {}
    for name, (description, columns) in TABLES.items():
        table: dict[str, Any] = {"description": description, "columns": dict(columns)}
        if name in FACETS:
            table["facets"] = FACETS[name]
        if name in SORT_DESC:
            table["sort_desc"] = SORT_DESC[name]
        tables[name] = table
    return {
        "title": "Fine-tuning job archive",
        "description": "Fine-tuning jobs archived by archiver: every job, every change seen, every sync run.",
        "databases": {
            database_name: {
                "queries": {name: canned_query(name) for name in reports.names()},
                "tables": tables,
            }
        },
    }


def canned_query(name: str) -> dict[str, Any]:
    """One report as a Datasette canned query: its SQL rewritten for Datasette's parameters."""
    sql = "\n".join(line for line in reports.load(name).splitlines() if not line.startswith("--"))
    binds = list(dict.fromkeys(reports.BIND.findall(sql)))
    sql = reports.BIND.sub(lambda m: DATASETTE_BINDS.get(m[1], m[0]), sql)
    params = [b for b in binds if b != "now"]
    help_lines = [PARAMETER_HELP.get(p, p) for p in params]
    description = reports.describe(name) + (" Parameters: " + "; ".join(help_lines) + "." if params else "")
    return {
        "title": re.sub(r"_", " ", name).capitalize(),
        "description": description,
        "sql": sql.strip(),
        "params": params,
    }
