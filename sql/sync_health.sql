-- Recent sync runs, newest first: duration, requests, job counts and errors.
-- Parameters:
--   since time default 1970-01-01: only runs started at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only runs started before this date or time
--   limit int default 100: at most this many runs, the newest (`archiver runs --limit N`)
--   route text default *: only the runs of this route (*: every route's)
SELECT r.id,
       r.route,
       s.started_utc,
       r.mode,
       r.status,
       s.duration_seconds,
       r.pages,
       r.requests,
       r.jobs_inserted AS new,
       r.jobs_updated AS changed,
       r.jobs_unchanged AS unchanged,
       r.jobs_rejected AS rejected,
       r.error
FROM sync_runs r
JOIN sync_run_summary s ON s.id = r.id
WHERE r.started_at >= :since AND r.started_at < :until AND (:route = '*' OR r.route = :route)
ORDER BY r.id DESC
LIMIT :limit
