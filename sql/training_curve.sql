-- One job's metrics by step, from its result file: train and validation loss and accuracy side by side.
-- Parameters:
--   job_id text required: the job's id, e.g. ftjob-abc123
SELECT step,
       train_loss,
       train_accuracy,
       valid_loss,
       valid_accuracy,
       full_valid_loss,
       full_valid_accuracy,
       train_reward_mean,
       valid_reward_mean
FROM job_metric_steps
WHERE job_id = :job_id
ORDER BY step
