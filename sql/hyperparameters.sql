-- Epochs, batch size and learning-rate multiplier used, by base model and method (text: auto or the number).
-- Parameters: --since/--until filter on created_at.
SELECT model,
       method_type,
       n_epochs,
       batch_size,
       learning_rate_multiplier,
       count(*) AS jobs
FROM job_summary
WHERE created_at BETWEEN :since AND :until
GROUP BY model, method_type, n_epochs, batch_size, learning_rate_multiplier
ORDER BY model, method_type IS NULL, method_type, jobs DESC, n_epochs IS NULL, n_epochs,
         batch_size IS NULL, batch_size, learning_rate_multiplier IS NULL, learning_rate_multiplier
