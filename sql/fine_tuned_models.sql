-- Every fine-tuned model produced: its job, base model, suffix, finish time and trained tokens.
-- Parameters: --since/--until filter on created_at.
SELECT fine_tuned_model,
       id AS job_id,
       model AS base_model,
       user_provided_suffix AS suffix,
       finished_utc,
       trained_tokens
FROM job_summary
WHERE fine_tuned_model IS NOT NULL AND created_at BETWEEN :since AND :until
ORDER BY finished_at IS NULL, finished_at DESC, fine_tuned_model
