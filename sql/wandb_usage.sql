-- Weights & Biases projects, entities and tags used by jobs, with job counts.
-- Parameters: --since/--until filter on created_at.
SELECT i.wandb_project AS project,
       i.wandb_entity AS entity,
       t.tag,
       count(DISTINCT i.job_id) AS jobs
FROM integrations i
JOIN jobs j ON j.id = i.job_id
LEFT JOIN tags t ON t.job_id = i.job_id AND t.integration_position = i.position
WHERE i.type = 'wandb' AND j.created_at BETWEEN :since AND :until
GROUP BY i.wandb_project, i.wandb_entity, t.tag
ORDER BY i.wandb_project IS NULL, i.wandb_project, i.wandb_entity IS NULL, i.wandb_entity, t.tag IS NULL, t.tag
