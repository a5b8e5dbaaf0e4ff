-- Runs of one base model compared, best validation loss first: hyperparameters, tokens and losses.
-- Parameters:
--   model text required: the base model, e.g. gpt-4o-mini-2024-07-18
SELECT m.job_id,
       s.created_utc,
       m.method_type,
       m.n_epochs,
       m.batch_size,
       m.learning_rate_multiplier,
       m.trained_tokens,
       m.final_step,
       m.final_train_loss,
       m.best_valid_loss,
       m.best_valid_step,
       m.final_valid_loss,
       m.best_valid_loss - m.final_valid_loss AS best_minus_final_valid_loss
FROM job_final_metrics m
JOIN job_summary s ON s.id = m.job_id
WHERE m.model = :model
ORDER BY m.best_valid_loss IS NULL, m.best_valid_loss, m.final_train_loss IS NULL, m.final_train_loss, m.job_id
