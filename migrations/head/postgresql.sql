-- The postgresql schema at the head revision beyond the tables of archiver/models.py: Alembic's
-- version table and the views, as migrations 0004 to 0007 left them. db.create_head() runs it on an
-- empty database; tests/test_db.py proves that schema the same as the migrations build, so a new
-- revision that changes a view (or adds one) changes this file too.

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE VIEW job_summary AS
SELECT j.id, j.status, j.status_class, j.provider, j.vanished_at, CASE WHEN j.vanished_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(j.vanished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS vanished_utc, j.model, j.fine_tuned_model, j.method_type, j.user_provided_suffix,
       j.created_at, CASE WHEN j.created_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(j.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS created_utc,
       CASE WHEN j.created_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(j.created_at) AT TIME ZONE 'UTC', 'YYYY-MM') END AS created_month,
       j.finished_at, CASE WHEN j.finished_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(j.finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS finished_utc,
       j.finished_at - j.created_at AS duration_seconds,
       CASE WHEN j.estimated_finish BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(j.estimated_finish) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS estimated_finish_utc,
       j.trained_tokens, e.code AS error_code, e.message AS error_message,
       (SELECT count(*) FROM result_files r WHERE r.job_id = j.id) AS result_file_count,
       (SELECT i.wandb_project FROM integrations i WHERE i.job_id = j.id
        ORDER BY i.position LIMIT 1) AS wandb_project,
       j.n_epochs, j.batch_size, j.learning_rate_multiplier
FROM jobs j LEFT JOIN errors e ON e.job_id = j.id;

CREATE VIEW job_history_fields AS
SELECT h.id, h.job_id, h.sync_run_id, h.observed_at, CASE WHEN h.observed_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(h.observed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS observed_utc,
       h.status, h.content_hash,
       h.raw->>'finished_at' AS finished_at, h.raw->>'estimated_finish' AS estimated_finish,
       h.raw->>'fine_tuned_model' AS fine_tuned_model, h.raw->>'trained_tokens' AS trained_tokens,
       h.raw->'error'->>'code' AS error_code, CASE WHEN json_typeof(h.raw->'result_files') = 'array' THEN json_array_length(h.raw->'result_files') END AS result_file_count
FROM (SELECT h.id, h.job_id, h.sync_run_id, h.observed_at, h.status, h.content_hash, replace(regexp_replace(regexp_replace(replace(replace(h.raw::text, '\\', chr(1)), '\u0000', '\ufffd'), '\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})', '\ufffd', 'g'), '(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}', '\ufffd', 'g'), chr(1), '\\')::json AS raw FROM job_history h) h;

CREATE VIEW sync_run_summary AS
SELECT r.id, CASE WHEN r.started_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(r.started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS started_utc, CASE WHEN r.finished_at BETWEEN 0 AND 253402300799 THEN to_char(to_timestamp(r.finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS finished_utc,
       r.finished_at - r.started_at AS duration_seconds, r.status, r.mode, r.pages, r.requests,
       r.jobs_seen, r.jobs_inserted, r.jobs_updated, r.jobs_unchanged, r.jobs_rejected, r.error
FROM sync_runs r;
