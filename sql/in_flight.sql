-- Jobs not yet in a final status, how long since they were created, and since when the
-- archive has seen them in their current status.
-- Parameters: none (the age is measured from now).
SELECT s.id,
       s.status,
       s.model,
       s.created_utc,
       (:now - s.created_at) / 3600 AS hours_since_created,
       (SELECT min(h.observed_utc) FROM job_history_fields h
        WHERE h.job_id = s.id AND h.status = s.status) AS status_seen_since,
       s.estimated_finish_utc
FROM job_summary s
WHERE s.status IS NULL OR s.status NOT IN ('succeeded', 'failed', 'cancelled')
ORDER BY s.created_at, s.id
