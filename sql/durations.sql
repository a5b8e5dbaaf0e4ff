-- How long finished jobs took (finished_at - created_at, seconds) by base model and status:
-- count, min, average, max, and the nearest-rank median and 90th percentile.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
WITH d AS (
    SELECT model, status, duration_seconds AS s,
           row_number() OVER (PARTITION BY model, status ORDER BY duration_seconds) AS rn,
           count(*) OVER (PARTITION BY model, status) AS n
    FROM job_summary
    WHERE duration_seconds IS NOT NULL AND created_at >= :since AND created_at < :until
)
SELECT model,
       status,
       max(n) AS jobs,
       min(s) AS min_seconds,
       CAST(avg(s) AS DOUBLE PRECISION) AS avg_seconds,
       max(s) AS max_seconds,
       max(CASE WHEN rn = (n + 1) / 2 THEN s END) AS median_seconds,
       max(CASE WHEN rn = (9 * n + 9) / 10 THEN s END) AS p90_seconds
FROM d
GROUP BY model, status
ORDER BY model, status
