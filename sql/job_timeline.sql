-- Every observed version of one job from job_history, in order, and what changed each time.
-- Parameters:
--   job_id text required: the job's id, e.g. ftjob-abc123
WITH h AS (
    SELECT f.*,
           lag(f.content_hash) OVER w AS prev_hash,
           lag(f.status) OVER w AS prev_status,
           lag(f.finished_at) OVER w AS prev_finished_at,
           lag(f.estimated_finish) OVER w AS prev_estimated_finish,
           lag(f.fine_tuned_model) OVER w AS prev_fine_tuned_model,
           lag(f.trained_tokens) OVER w AS prev_trained_tokens,
           lag(f.error_code) OVER w AS prev_error_code,
           lag(f.result_file_count) OVER w AS prev_result_file_count
    FROM job_history_fields f
    WHERE f.job_id = :job_id
    WINDOW w AS (ORDER BY f.id)
)
SELECT observed_utc,
       sync_run_id,
       status,
       CASE WHEN prev_hash IS NULL THEN 'first seen' ELSE coalesce(nullif(trim(
           CASE WHEN coalesce(status, '') <> coalesce(prev_status, '') THEN 'status ' ELSE '' END ||
           CASE WHEN coalesce(finished_at, '') <> coalesce(prev_finished_at, '') THEN 'finished_at ' ELSE '' END ||
           CASE WHEN coalesce(estimated_finish, '') <> coalesce(prev_estimated_finish, '')
                THEN 'estimated_finish ' ELSE '' END ||
           CASE WHEN coalesce(fine_tuned_model, '') <> coalesce(prev_fine_tuned_model, '')
                THEN 'fine_tuned_model ' ELSE '' END ||
           CASE WHEN coalesce(trained_tokens, '') <> coalesce(prev_trained_tokens, '')
                THEN 'trained_tokens ' ELSE '' END ||
           CASE WHEN coalesce(error_code, '') <> coalesce(prev_error_code, '') THEN 'error ' ELSE '' END ||
           CASE WHEN coalesce(result_file_count, -1) <> coalesce(prev_result_file_count, -1)
                THEN 'result_files ' ELSE '' END
       ), ''), 'other fields') END AS changed
FROM h
ORDER BY id
