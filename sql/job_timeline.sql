-- Every observed version of one job from job_history, in order, and what changed each time.
-- Parameters:
--   job_id text required: the job's id, e.g. ftjob-abc123
WITH f AS (
    -- A row of the same content hash as the one before it is no change (archives made before 0008
    -- hold such rows, written when a run fetched a job it used to list): `h` leaves it out.
    SELECT f.*, lag(f.content_hash) OVER (ORDER BY f.id) AS before_hash,
           -- what differs by route only is no change here either, as in normalize.meaning:
           -- Azure's GET says queued where its list says created or pending (ROUTE_RENAMES) ...
           CASE WHEN j.provider = 'azure-openai' AND f.status IN ('created', 'pending') THEN 'queued'
                ELSE f.status END AS status_meant,
           -- ... and only Bedrock's GET holds its output model and failure message (ROUTE_OMITS)
           CASE WHEN j.provider = 'bedrock' THEN NULL ELSE f.fine_tuned_model END AS model_meant,
           CASE WHEN j.provider = 'bedrock' THEN NULL ELSE f.error_code END AS error_meant
    FROM job_history_fields f LEFT JOIN jobs j ON j.id = f.job_id
    WHERE f.job_id = :job_id
), h AS (
    SELECT f.*,
           lag(f.content_hash) OVER w AS prev_hash,
           lag(f.status_meant) OVER w AS prev_status,
           lag(f.finished_at) OVER w AS prev_finished_at,
           lag(f.estimated_finish) OVER w AS prev_estimated_finish,
           lag(f.model_meant) OVER w AS prev_fine_tuned_model,
           lag(f.trained_tokens) OVER w AS prev_trained_tokens,
           lag(f.error_meant) OVER w AS prev_error_code,
           lag(f.result_file_count) OVER w AS prev_result_file_count
    FROM f
    WHERE f.before_hash IS NULL OR f.before_hash <> f.content_hash
    WINDOW w AS (ORDER BY f.id)
)
SELECT observed_utc,
       sync_run_id,
       status,
       CASE WHEN prev_hash IS NULL THEN 'first seen' ELSE coalesce(nullif(trim(
           CASE WHEN coalesce(status_meant, '') <> coalesce(prev_status, '') THEN 'status ' ELSE '' END ||
           CASE WHEN coalesce(finished_at, '') <> coalesce(prev_finished_at, '') THEN 'finished_at ' ELSE '' END ||
           CASE WHEN coalesce(estimated_finish, '') <> coalesce(prev_estimated_finish, '')
                THEN 'estimated_finish ' ELSE '' END ||
           CASE WHEN coalesce(model_meant, '') <> coalesce(prev_fine_tuned_model, '')
                THEN 'fine_tuned_model ' ELSE '' END ||
           CASE WHEN coalesce(trained_tokens, '') <> coalesce(prev_trained_tokens, '')
                THEN 'trained_tokens ' ELSE '' END ||
           CASE WHEN coalesce(error_meant, '') <> coalesce(prev_error_code, '') THEN 'error ' ELSE '' END ||
           CASE WHEN coalesce(result_file_count, -1) <> coalesce(prev_result_file_count, -1)
                THEN 'result_files ' ELSE '' END
       ), ''), 'other fields') END AS changed
FROM h
ORDER BY id
