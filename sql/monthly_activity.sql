-- Jobs created, succeeded and failed, and tokens trained, per month of creation (UTC).
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT created_month AS month,
       count(*) AS created,
       sum(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
       CAST(coalesce(sum(trained_tokens), 0) AS BIGINT) AS trained_tokens
FROM job_summary
WHERE created_at >= :since AND created_at < :until
GROUP BY created_month
ORDER BY created_month IS NULL, created_month
