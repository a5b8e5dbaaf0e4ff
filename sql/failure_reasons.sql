-- Why jobs failed: error code and message counts by base model, with the latest occurrence.
-- Parameters: --since/--until filter on created_at.
SELECT error_code AS code,
       error_message AS message,
       model,
       count(*) AS jobs,
       max(created_utc) AS latest_created
FROM job_summary
WHERE (error_code IS NOT NULL OR error_message IS NOT NULL)
  AND created_at BETWEEN :since AND :until
GROUP BY error_code, error_message, model
ORDER BY jobs DESC, error_code IS NULL, error_code, error_message IS NULL, error_message, model
