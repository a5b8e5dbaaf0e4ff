-- How long finished jobs took (finished_at - created_at, seconds) by base model and status:
-- count, min, average, max, and the nearest-rank median and 90th percentile.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
WITH c AS (
    -- Jobs counted per distinct duration, in the order of ix_jobs_durations, and the percentiles
    -- read off the running counts: a window over every job would sort them all (4 s at a million).
    -- `+created_at` keeps the time range from choosing an index that starts with created_at instead.
    SELECT model, status, finished_at - created_at AS s, count(*) AS k
    FROM jobs
    WHERE finished_at IS NOT NULL AND +created_at >= :since AND +created_at < :until
    GROUP BY model, status, finished_at - created_at
), r AS (
    SELECT model, status, s, k,
           CAST(sum(k) OVER (PARTITION BY model, status ORDER BY s ROWS UNBOUNDED PRECEDING) AS BIGINT) AS upto,
           CAST(sum(k) OVER (PARTITION BY model, status) AS BIGINT) AS n
    FROM c
)
SELECT model,
       status,
       max(n) AS jobs,
       min(s) AS min_seconds,
       sum(CAST(s AS DOUBLE PRECISION) * k) / max(n) AS avg_seconds,
       max(s) AS max_seconds,
       min(CASE WHEN upto >= (n + 1) / 2 THEN s END) AS median_seconds,
       min(CASE WHEN upto >= (9 * n + 9) / 10 THEN s END) AS p90_seconds
FROM r
GROUP BY model, status
ORDER BY model, status
