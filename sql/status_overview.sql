-- Jobs per status, with the oldest and newest creation time (Unix seconds).
-- Parameters: none.
SELECT status,
       count(*) AS jobs,
       min(created_at) AS oldest_created_at,
       max(created_at) AS newest_created_at
FROM jobs
GROUP BY status
ORDER BY jobs DESC, status
