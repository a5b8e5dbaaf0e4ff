-- Why jobs failed: error code and message counts by base model, with the latest occurrence.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT error_code AS code,
       error_message AS message,
       model,
       count(*) AS jobs,
       max(created_utc) AS latest_created
FROM job_summary
WHERE (error_code IS NOT NULL OR error_message IS NOT NULL)
  AND created_at >= :since AND created_at < :until
GROUP BY error_code, error_message, model
ORDER BY jobs DESC, error_code IS NULL, error_code, error_message IS NULL, error_message, model
