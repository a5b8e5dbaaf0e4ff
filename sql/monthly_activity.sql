-- Jobs created, succeeded and failed, and tokens trained, per month of creation (UTC).
-- Parameters: --since/--until filter on created_at.
SELECT created_month AS month,
       count(*) AS created,
       sum(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
       CAST(coalesce(sum(trained_tokens), 0) AS BIGINT) AS trained_tokens
FROM job_summary
WHERE created_at BETWEEN :since AND :until
GROUP BY created_month
ORDER BY created_month IS NULL, created_month
