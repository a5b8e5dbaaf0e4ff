"""The dashboard's charts of what jobs learned: loss curves of recent jobs (one picked from a menu) and
the best against the final validation loss, from the views of migration 0010 (portable SQL)."""

from typing import Any

from archiver.charts import PALETTE, figure

RECENT = 12  # the jobs whose loss curves the dashboard carries

QUERIES = {
    "loss_curves": f"""
WITH recent AS (
    SELECT job_id, model, created_at FROM job_final_metrics
    ORDER BY created_at IS NULL, created_at DESC, job_id LIMIT {RECENT}
)
SELECT s.job_id, r.model, s.step, s.train_loss, s.valid_loss
FROM job_metric_steps s JOIN recent r ON r.job_id = s.job_id
WHERE s.train_loss IS NOT NULL OR s.valid_loss IS NOT NULL
ORDER BY r.created_at IS NULL, r.created_at DESC, s.job_id, s.step""",
    "best_vs_final": """
SELECT job_id, coalesce(model, '(unknown)') AS model, best_valid_loss, final_valid_loss, best_valid_step
FROM job_final_metrics WHERE best_valid_loss IS NOT NULL AND final_valid_loss IS NOT NULL
ORDER BY model, job_id""",
}


def draw(go: Any, rows: dict[str, list[Any]]) -> list[tuple[str, str, Any]]:
    """(key, title, figure or None) for each chart, in page order, as charts.draw gives its own."""
    return [
        (
            "loss_curves",
            "Loss curves of recent jobs: train and validation loss by step",
            loss_curves(go, rows),
        ),
        ("best_vs_final", "Best against final validation loss, per job", best_vs_final(go, rows)),
    ]


def loss_curves(go: Any, rows: dict[str, list[Any]]) -> Any:
    """Two traces per job (train, validation), the newest job's shown; a menu picks another job."""
    jobs: dict[str, list[Any]] = {}
    for row in rows["loss_curves"]:
        jobs.setdefault(row[0], []).append(row)
    if not jobs:
        return None
    traces, buttons = [], []
    for k, (job_id, steps) in enumerate(jobs.items()):
        for column, name, dash in ((3, "train loss", "solid"), (4, "validation loss", "dot")):
            points = [(r[2], r[column]) for r in steps if r[column] is not None]
            traces.append(
                go.Scatter(
                    name=name,
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"color": PALETTE[column - 3], "dash": dash},
                    visible=k == 0,
                    legendgroup=name,
                )
            )
        label = f"{job_id} ({steps[0][1] or 'unknown model'})"
        shown = [j == k for j in range(len(jobs)) for _ in (0, 1)]
        buttons.append({"label": label, "method": "update", "args": [{"visible": shown}]})
    menu = {
        "buttons": buttons,
        "direction": "down",
        "x": 0,
        "xanchor": "left",
        "y": 1.12,
        "yanchor": "bottom",
    }
    layout = {"updatemenus": [menu], "margin": {"t": 60}}
    return figure(go, traces, "step", "loss", **layout)


def best_vs_final(go: Any, rows: dict[str, list[Any]]) -> Any:
    """One marker per job, by base model; on the diagonal the last validation was the best one."""
    data = rows["best_vs_final"]
    if not data:
        return None
    models = sorted({r[1] for r in data})
    traces = [
        go.Scatter(
            name=model,
            x=[r[2] for r in data if r[1] == model],
            y=[r[3] for r in data if r[1] == model],
            mode="markers",
            marker={"color": PALETTE[i % len(PALETTE)], "size": 8},
            hovertext=[f"{r[0]}: best at step {r[4]}" for r in data if r[1] == model],
        )
        for i, model in enumerate(models)
    ]
    low = min(min(r[2], r[3]) for r in data)
    high = max(max(r[2], r[3]) for r in data)
    diagonal = go.Scatter(
        name="final = best", x=[low, high], y=[low, high], mode="lines", line={"color": "#999"}
    )
    return figure(go, [*traces, diagonal], "best validation loss", "final validation loss")
