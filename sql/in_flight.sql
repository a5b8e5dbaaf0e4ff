-- Jobs not yet in a final status (status_class: every provider's names for it), how long since
-- they were created, and since when the archive has seen them in their current status (since
-- they last changed to it).
-- Parameters:
--   now time default now: the time ages are measured from
--   route text default *: only the jobs this route lists (*: every job)
WITH seen AS (
    SELECT h.job_id,
           h.id,
           h.status,
           h.observed_utc,
           lag(h.id) OVER w AS prev_id,
           lag(h.status) OVER w AS prev_status
    FROM job_history_fields h
    WHERE h.job_id IN (SELECT id FROM jobs WHERE status_class IN ('queued', 'running', 'unknown'))
    WINDOW w AS (PARTITION BY h.job_id ORDER BY h.id)
),
stretches AS (
    SELECT job_id,
           status,
           observed_utc,
           row_number() OVER (PARTITION BY job_id ORDER BY id DESC) AS newest_first
    FROM seen
    WHERE prev_id IS NULL
       OR (status IS NULL) <> (prev_status IS NULL)
       OR status <> prev_status
)
SELECT s.id,
       s.status,
       s.model,
       s.created_utc,
       (:now - s.created_at) / 3600 AS hours_since_created,
       st.observed_utc AS status_seen_since,
       s.estimated_finish_utc
FROM job_summary s
LEFT JOIN stretches st
       ON st.job_id = s.id AND st.newest_first = 1
      AND (st.status = s.status OR (st.status IS NULL AND s.status IS NULL))
WHERE s.status_class IN ('queued', 'running', 'unknown')
  AND (:route = '*' OR s.id IN (SELECT job_id FROM job_routes WHERE route = :route))
ORDER BY s.created_at, s.id
