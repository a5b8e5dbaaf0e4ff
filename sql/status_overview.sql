-- Jobs per status, with the oldest and newest creation time (UTC).
-- Parameters: --since/--until filter on created_at.
SELECT status,
       count(*) AS jobs,
       min(created_utc) AS oldest_created,
       max(created_utc) AS newest_created
FROM job_summary
WHERE created_at BETWEEN :since AND :until
GROUP BY status
ORDER BY jobs DESC, status
