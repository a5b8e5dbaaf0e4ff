"""Datasette descriptions of the audit trail's tables and columns (archiver/chain.py)."""

CHAIN = {
    "seq": "The audit chain's link number (1, 2, 3, ... with no gap); empty for a run still running",
    "record": "The exact canonical JSON hashed (RFC 8785): the row's fields, and prev: the last link's hash",
    "hash": "SHA-256 of record (hex)",
}
AUDIT_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "detail_history": (
        "Audit chain: one row each time a job's details (events, checkpoints, files, metrics) were archived",
        {
            "id": "The row's number, in order",
            "job_id": "The job (jobs.id)",
            "sync_run_id": "The run that archived them (sync_runs.id)",
            "written_at": "When (Unix seconds)",
            "details_sha256": "SHA-256 of the details' rows as written then",
            **CHAIN,
        },
    ),
    "chain_head": (
        "Audit chain: its newest link, advanced with every link written",
        {
            "archive_id": "This archive's id (a UUID), in every checkpoint",
            "seq": "The newest link's number",
            "hash": "The newest link's hash",
            "updated_at": "When it last advanced (Unix seconds)",
        },
    ),
    "verify_runs": (
        "Every archiver verify and its verdict",
        {
            "id": "The verify's number, in order",
            "verified_at": "When (Unix seconds)",
            "rows_checked": "Links recomputed",
            "intact": "1 when nothing failed",
            "anchored_seq": "The last link a checkpoint kept elsewhere anchors; empty if none was given",
            "failures": "The first failure of each kind, one per line",
        },
    ),
    "audit_chain": (
        "View: every link of the audit chain in order (job_history, sync_runs and detail_history rows)",
        {
            "seq": CHAIN["seq"],
            "table_name": "The table the link's row is in",
            "id": "The row's id in that table",
            "hash": CHAIN["hash"],
            "record": CHAIN["record"],
        },
    ),
}
