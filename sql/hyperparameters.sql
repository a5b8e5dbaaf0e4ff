-- Epochs, batch size and learning-rate multiplier used, by base model and method (text: auto or the number).
-- Parameters:
--   since time default 1970-01-01: only jobs created at or after this date or time (UTC unless it says)
--   until time default 9999-12-31T23:59:59: only jobs created before this date or time
SELECT model,
       -- grouped in the order of ix_jobs_hyperparameter_groups, which holds every column read;
       -- `+created_at` keeps the time range from choosing an index that starts with created_at
       method_type,
       n_epochs,
       batch_size,
       learning_rate_multiplier,
       count(*) AS jobs
FROM jobs
WHERE +created_at >= :since AND +created_at < :until
GROUP BY model, method_type, n_epochs, batch_size, learning_rate_multiplier
ORDER BY model, method_type IS NULL, method_type, jobs DESC, n_epochs IS NULL, n_epochs,
         batch_size IS NULL, batch_size, learning_rate_multiplier IS NULL, learning_rate_multiplier
