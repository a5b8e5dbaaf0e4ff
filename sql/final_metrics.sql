-- Per job with metrics: final train loss, best validation loss and its step, tokens, model and hyperparameters.
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT m.job_id,
       s.created_utc,
       m.model,
       m.method_type,
       m.status,
       m.trained_tokens,
       m.n_epochs,
       m.batch_size,
       m.learning_rate_multiplier,
       m.final_step,
       m.final_train_loss,
       m.best_valid_loss,
       m.best_valid_step,
       m.final_valid_loss
FROM job_final_metrics m
JOIN job_summary s ON s.id = m.job_id
WHERE m.created_at >= :since AND m.created_at < :until
ORDER BY m.created_at DESC, m.job_id
