-- Jobs per status, with the oldest and newest creation time (UTC).
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
--   route text default *: only the jobs this route lists (*: every job)
SELECT status,
       count(*) AS jobs,
       min(created_utc) AS oldest_created,
       max(created_utc) AS newest_created
FROM job_summary
WHERE created_at >= :since AND created_at < :until
  AND (:route = '*' OR id IN (SELECT job_id FROM job_routes WHERE route = :route))
GROUP BY status
ORDER BY jobs DESC, status
