-- Weights & Biases projects, entities and tags used by jobs, with job counts.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT i.wandb_project AS project,
       i.wandb_entity AS entity,
       t.tag,
       count(DISTINCT i.job_id) AS jobs
FROM integrations i
JOIN jobs j ON j.id = i.job_id
LEFT JOIN tags t ON t.job_id = i.job_id AND t.integration_position = i.position
WHERE i.type = 'wandb' AND j.created_at >= :since AND j.created_at < :until
GROUP BY i.wandb_project, i.wandb_entity, t.tag
ORDER BY i.wandb_project IS NULL, i.wandb_project, i.wandb_entity IS NULL, i.wandb_entity, t.tag IS NULL, t.tag
