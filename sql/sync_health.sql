-- Recent sync runs, newest first: duration, requests, job counts and errors.
-- Parameters: --since/--until filter on the run's start (`archiver runs --limit N` shows the newest N).
SELECT r.id,
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
WHERE r.started_at BETWEEN :since AND :until
ORDER BY r.id DESC
LIMIT :limit
