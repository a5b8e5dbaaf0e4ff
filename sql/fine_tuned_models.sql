-- Every fine-tuned model produced: its job, base model, suffix, finish time and trained tokens.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT fine_tuned_model,
       id AS job_id,
       model AS base_model,
       user_provided_suffix AS suffix,
       finished_utc,
       trained_tokens
FROM job_summary
WHERE fine_tuned_model IS NOT NULL AND created_at >= :since AND created_at < :until
ORDER BY finished_at IS NULL, finished_at DESC, fine_tuned_model
