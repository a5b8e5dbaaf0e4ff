"""Datasette descriptions of the details' tables and views (archiver/details.py), beside datasette.py's."""

JOB_ID = {"job_id": "The job (jobs.id)"}
STEP_METRICS = {
    "train_loss": "Training loss at the step (result file column train_loss)",
    "train_accuracy": "Training accuracy: train_accuracy or train_mean_token_accuracy",
    "valid_loss": "Validation loss, on the steps that were validated",
    "valid_accuracy": "Validation accuracy: valid_mean_token_accuracy or validation_mean_token_accuracy",
    "full_valid_loss": "Loss over the whole validation set (Azure, and OpenAI at the end)",
    "full_valid_accuracy": "Accuracy over the whole validation set",
    "train_reward_mean": "Reinforcement fine-tuning: mean reward on the training batch",
    "valid_reward_mean": "Reinforcement fine-tuning: mean reward on validation",
}
SUMMED_UP = {  # job_metric_summary's columns, which job_final_metrics shows
    "steps": "Steps with metrics",
    "final_step": "The last step",
    "final_train_loss": "Training loss at the last step",
    "final_train_accuracy": "Training accuracy at the last step",
    "best_valid_loss": "The lowest validation loss",
    "best_valid_step": "The first step where it was reached",
    "final_valid_loss": "Validation loss at the last validated step",
}

DETAIL_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "job_details": (
        "Per final job: details archived (done), to be tried again (retry), or out of its route's reach",
        {
            **JOB_ID,
            "state": "done, retry (tried again after next_try_at), or unsupported (by the route)",
            "attempts": "How many runs tried to fetch them",
            "next_try_at": "retry: not tried again before this time (Unix seconds)",
            "error": "retry: the last failure; unsupported: why; done: what the API no longer had",
            "fetched_at": "When a run last tried (Unix seconds)",
            "sync_run_id": "That run (sync_runs.id)",
        },
    ),
    "job_events": (
        "Every event of a final job, as the API listed it",
        {
            **JOB_ID,
            "id": "The event's id (ftevent-...)",
            "created_at": "When it happened (Unix seconds)",
            "level": "info, warn or error",
            "type": "message or metrics",
            "message": "The event's text",
            "data": "Its data (JSON): a metrics event's step, train_loss, valid_loss, ...",
            "raw": "The event as sent (JSON)",
        },
    ),
    "job_checkpoints": (
        "The checkpoints a job kept (OpenAI keeps those of the last 3 epochs)",
        {
            **JOB_ID,
            "id": "The checkpoint's id (ftckpt_...)",
            "created_at": "When it was made (Unix seconds)",
            "step_number": "The step it was taken at",
            "fine_tuned_model_checkpoint": "The model name to use it",
            "metrics": "Its metrics (JSON): train_loss, valid_loss, full_valid_loss, ...",
            "raw": "The checkpoint as sent (JSON)",
        },
    ),
    "files": (
        "Every training, validation and result file a job names, fetched once per file",
        {
            "id": "The file id",
            "filename": "Its name when uploaded or made",
            "bytes": "Its size in bytes",
            "purpose": "fine-tune (training, validation) or fine-tune-results",
            "created_at": "When it was made (Unix seconds)",
            "status": "The API's processing status",
            "raw": "The file object as sent (JSON); empty when the API no longer had it",
            "missing": "Why its metadata could not be had, e.g. gone upstream (404)",
            "fetched_at": "When it was fetched (Unix seconds)",
        },
    ),
    "file_contents": (
        "Result files as received (so that a parser fixed later can read them again)",
        {
            "file_id": "The result file (files.id)",
            "content": "Its bytes as received; empty when over the size cap or gone",
            "size": "Bytes received, or announced when over the cap",
            "sha256": "SHA-256 of the bytes kept",
            "content_type": "The content type it came with",
            "encoding": "base64 (of the CSV) or csv; empty when it is neither (see rejected_details)",
            "note": "Why the bytes are not kept, if they are not",
            "fetched_at": "When it was fetched (Unix seconds)",
        },
    ),
    "job_metrics": (
        "One row per job, step and metric of its result file(s): every column, known or not",
        {
            **JOB_ID,
            "file_id": "The result file it was read from",
            "step": "The training step",
            "metric": "The result file's column, e.g. train_loss, valid_mean_token_accuracy",
            "value": "Its value at the step",
        },
    ),
    "job_metric_summary": (
        "One row per job with metrics: its curve summed up when its details were written",
        {**JOB_ID, **SUMMED_UP},
    ),
    "rejected_details": (
        "Events, checkpoints, result files and rows that could not be read, kept with why",
        {
            "id": "The reject's number",
            **JOB_ID,
            "kind": "event, checkpoint, result_file or result_row",
            "file_id": "The result file, for result_file and result_row",
            "line": "result_row: its line in the CSV (1 is the header)",
            "reason": "Why it could not be read",
            "raw": "What was received (JSON for events and checkpoints, CSV text for rows)",
        },
    ),
    "job_metric_steps": (
        "View: a job's common metrics of each step side by side, from job_metrics",
        {**JOB_ID, "step": "The training step", **STEP_METRICS},
    ),
    "job_final_metrics": (
        "View: per job with metrics, its final train loss and best validation loss",
        {
            **JOB_ID,
            **{k: f"The job's {k.replace('_', ' ')} (jobs.{k})" for k in ("model", "method_type", "status")},
            "created_at": "When the job was created (Unix seconds)",
            "trained_tokens": "Billable tokens trained",
            "n_epochs": "Epochs: auto or the number as sent (text)",
            "batch_size": "Batch size: auto or the number as sent (text)",
            "learning_rate_multiplier": "Learning-rate multiplier: auto or the number as sent (text)",
            **SUMMED_UP,
        },
    ),
}
