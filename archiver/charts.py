"""The dashboard's charts: aggregates in portable SQL on the views, and the plotly figures drawn from them.

No query returns a row per job (but the IN_FLIGHT_LIMIT oldest in flight), so the cost of a dashboard
is that of the queries, whatever the size of the archive.
"""

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

IN_FLIGHT_LIMIT = 50  # the oldest jobs in flight that the dashboard lists
FINAL_SQL = "('succeeded', 'failed', 'cancelled')"
CLASS = "coalesce(status_class, 'unknown')"
MODEL = "coalesce(model, '(unknown)')"
CODE = "coalesce(error_code, '(no code)')"
STATE = "CASE WHEN vanished_at IS NULL THEN 'listed' ELSE 'vanished' END"
DAY = "substr(started_utc, 1, 10)"

QUERIES = {
    "jobs_per_month": f"""
SELECT created_month, {CLASS} AS cls, count(*) AS jobs
FROM job_summary WHERE created_month IS NOT NULL
GROUP BY created_month, {CLASS} ORDER BY created_month, cls""",
    # Nearest-rank quartiles (rank ceil(p * n)), as the durations report computes its percentiles.
    "durations": f"""
WITH d AS (
    SELECT {MODEL} AS model, status_class AS cls, duration_seconds AS s,
           row_number() OVER (PARTITION BY {MODEL}, status_class ORDER BY duration_seconds) AS rn,
           count(*) OVER (PARTITION BY {MODEL}, status_class) AS n
    FROM job_summary
    WHERE duration_seconds IS NOT NULL AND status_class IN {FINAL_SQL}
)
SELECT model, cls, min(s) AS lowest,
       max(CASE WHEN rn = (n + 3) / 4 THEN s END) AS q1,
       max(CASE WHEN rn = (n + 1) / 2 THEN s END) AS median,
       max(CASE WHEN rn = (3 * n + 3) / 4 THEN s END) AS q3,
       max(s) AS highest, max(n) AS jobs
FROM d GROUP BY model, cls ORDER BY model, cls""",
    "failures": f"""
SELECT {CODE} AS code, {MODEL} AS model, count(*) AS jobs
FROM job_summary WHERE status_class = 'failed'
GROUP BY {CODE}, {MODEL} ORDER BY code, model""",
    "failure_messages": f"""
SELECT {CODE} AS code, coalesce(error_message, '') AS message, count(*) AS jobs
FROM job_summary WHERE status_class = 'failed'
GROUP BY {CODE}, coalesce(error_message, '') ORDER BY jobs DESC, code, message LIMIT 10""",
    "tokens_per_month": f"""
SELECT created_month, {MODEL} AS model, CAST(sum(trained_tokens) AS BIGINT) AS tokens
FROM job_summary WHERE trained_tokens IS NOT NULL AND created_month IS NOT NULL
GROUP BY created_month, {MODEL} ORDER BY created_month, model""",
    "in_flight": f"""
SELECT id, status, model, provider, created_at, created_utc, estimated_finish_utc, {CLASS} AS cls
FROM job_summary WHERE {CLASS} NOT IN {FINAL_SQL} AND vanished_at IS NULL
ORDER BY created_at IS NULL, created_at, id LIMIT {IN_FLIGHT_LIMIT}""",
    "totals": f"""
SELECT count(*),
       sum(CASE WHEN status_class = 'succeeded' THEN 1 ELSE 0 END),
       sum(CASE WHEN status_class = 'failed' THEN 1 ELSE 0 END),
       sum(CASE WHEN {CLASS} NOT IN {FINAL_SQL} AND vanished_at IS NULL THEN 1 ELSE 0 END),
       CAST(coalesce(sum(trained_tokens), 0) AS BIGINT),
       count(vanished_at)
FROM jobs""",
    "last_run": "SELECT started_utc, status, error FROM sync_run_summary ORDER BY id DESC LIMIT 1",
    "succeeded_runs": "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'",
    "sync_per_day": f"""
SELECT {DAY} AS day, status, count(*) AS runs, CAST(coalesce(sum(requests), 0) AS BIGINT) AS requests
FROM sync_run_summary WHERE started_utc IS NOT NULL
GROUP BY {DAY}, status ORDER BY day, status""",
    "gaps": """
SELECT id, after_id, until_id, opened_at, blocked_reason, blocked_at
FROM sync_gaps ORDER BY id LIMIT 50""",
    "rejected": "SELECT count(*) FROM rejected_items",
    "listed_per_month": f"""
SELECT created_month, {STATE} AS state, count(*) AS jobs
FROM job_summary WHERE created_month IS NOT NULL
GROUP BY created_month, {STATE} ORDER BY created_month, state""",
}


FINAL = ("succeeded", "failed", "cancelled")
COLORS = {
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "cancelled": "#8c8c8c",
    "running": "#1f77b4",
    "queued": "#9ecae1",
    "unknown": "#9467bd",
    "interrupted": "#ff7f0e",
    "abandoned": "#bcbd22",
    "listed": "#6baed6",
    "vanished": "#ff7f0e",
}
# The base models' colours: none is, or is near, a colour of COLORS, so that a colour that means
# "succeeded" (or "failed", "running", ...) in one chart never means a model in the next.
PALETTE = ("#7b4173", "#e377c2", "#17becf", "#8c564b", "#3d3d8f", "#a6761d", "#c51b7d", "#2f4f4f")
DAY_MS = 86_400_000  # a bar's width on a date axis is in milliseconds


def draw(go: Any, rows: dict[str, list[Any]], now: float) -> list[tuple[str, str, Any]]:
    """(key, title, figure or None when there is nothing to draw) for each chart, in page order.

    go: plotly.graph_objects; rows: each query's result rows by name; now: Unix seconds for ages.
    """
    models = sorted(
        {r[0] for r in rows["durations"]} | {r[1] for r in rows["failures"] + rows["tokens_per_month"]}
    )
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}  # a model keeps its colour
    return [
        ("jobs_per_month", "Jobs per month of creation, by final status", jobs_per_month(go, rows)),
        ("durations", "How long finished jobs took, by base model", durations(go, rows)),
        ("failures", "Failure reasons (error code), by base model", failures(go, rows, colors)),
        ("tokens", "Trained tokens per month of creation, by base model", tokens(go, rows, colors)),
        ("in_flight", "In flight: oldest jobs not yet in a final status", in_flight(go, rows, now)),
        ("sync_health", "Sync runs per day by outcome, and requests made", sync_health(go, rows)),
        ("coverage", "Coverage: archived jobs per month, still listed or vanished", coverage(go, rows)),
    ]


def figure(go: Any, traces: list[Any], x_title: str, y_title: str, **layout: Any) -> Any:
    fig = go.Figure(traces)
    base = {"template": "plotly_white", "height": 380, "margin": {"l": 70, "r": 20, "t": 20, "b": 60}}
    fig.update_layout(base, legend={"orientation": "h", "y": -0.2}, xaxis_title=x_title, yaxis_title=y_title)
    fig.update_layout(layout)
    return fig


def month(value: str) -> str:
    return f"{value}-01"  # a month as a date, so the axis is a time axis


def by_series(rows: list[Any], x: Any = month) -> dict[str, tuple[list[Any], list[Any]]]:
    """(x, series, y) rows -> series -> (xs, ys)."""
    out: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    for row in rows:
        out[row[1] or "unknown"][0].append(x(row[0]))
        out[row[1] or "unknown"][1].append(row[2])
    return out


def monthly_bars(
    go: Any, rows: list[Any], y_title: str, order: tuple[str, ...] = (), colors: dict[str, str] = COLORS
) -> Any:
    if not rows:
        return None
    series = by_series(rows)
    names = [n for n in order if n in series] + sorted(n for n in series if n not in order)
    bars = [go.Bar(name=n, x=series[n][0], y=series[n][1], marker_color=colors.get(n)) for n in names]
    months = sorted({m for xs, _ in series.values() for m in xs})
    end = date.fromisoformat(months[-1]) + timedelta(days=31)  # into the next month: its first day
    xaxis = {
        "tickformat": "%b\n%Y",
        "dtick": "M1" if len(months) <= 12 else "M3",
        "ticklabelmode": "period",
        "range": [months[0], str(end.replace(day=1))],
    }
    for bar in bars:  # centred in its month; a lone bar on a date axis would be 1 ms wide
        bar.update(xperiod="M1", xperiodalignment="middle", width=DAY_MS * 24)
    return figure(go, bars, "month created (UTC)", y_title, barmode="stack", xaxis=xaxis)


def jobs_per_month(go: Any, rows: dict[str, list[Any]]) -> Any:
    return monthly_bars(go, rows["jobs_per_month"], "jobs", (*FINAL, "running", "queued", "unknown"))


def tokens(go: Any, rows: dict[str, list[Any]], colors: dict[str, str]) -> Any:
    return monthly_bars(go, rows["tokens_per_month"], "trained tokens", colors=colors)


def coverage(go: Any, rows: dict[str, list[Any]]) -> Any:
    return monthly_bars(go, rows["listed_per_month"], "jobs", ("listed", "vanished"))


def durations(go: Any, rows: dict[str, list[Any]]) -> Any:
    """A box per base model and final status from quartiles computed in SQL (whiskers: min and max)."""
    data = rows["durations"]
    if not data:
        return None
    scale, unit = (3600, "hours") if max(r[6] for r in data) > 5 * 3600 else (60, "minutes")
    traces = []
    for status in FINAL:
        mine = [r for r in data if r[1] == status]
        if mine:
            traces.append(
                go.Box(
                    name=status,
                    x=[r[0] for r in mine],
                    **{k: [r[i] / scale for r in mine] for i, k in enumerate(BOX, start=2)},
                    marker_color=COLORS[status],
                    hovertext=[f"{r[7]} jobs" for r in mine],
                )
            )
    return figure(go, traces, "base model", f"duration ({unit})", boxmode="group")


BOX = ("lowerfence", "q1", "median", "q3", "upperfence")


def failures(go: Any, rows: dict[str, list[Any]], colors: dict[str, str]) -> Any:
    """Stacked horizontal bars: the 15 most frequent error codes, most frequent on top."""
    totals: dict[str, int] = defaultdict(int)
    for code, _, jobs in rows["failures"]:
        totals[code] += jobs
    top = set(sorted(totals, key=lambda c: (-totals[c], c))[:15])
    series = by_series([r for r in rows["failures"] if r[0] in top], x=str)
    traces = [
        go.Bar(name=m, y=xs, x=ys, orientation="h", marker_color=colors.get(m))
        for m, (xs, ys) in sorted(series.items())
    ]
    yaxis = {"categoryorder": "total ascending", "automargin": True}
    return figure(go, traces, "failed jobs", "", barmode="stack", yaxis=yaxis) if traces else None


def in_flight(go: Any, rows: dict[str, list[Any]], now: float) -> Any:
    jobs = [r for r in rows["in_flight"][:30] if r[4] is not None]
    if not jobs:
        return None
    scale, unit = age_unit(max(now - r[4] for r in jobs))
    traces = []
    for cls in sorted({r[7] for r in jobs}):
        mine = [r for r in jobs if r[7] == cls]
        traces.append(
            go.Bar(
                name=cls,
                y=[r[0] for r in mine],
                x=[(now - r[4]) / scale for r in mine],
                orientation="h",
                marker_color=COLORS.get(cls, COLORS["unknown"]),
                hovertext=[f"{r[1]}, {r[2]} via {r[3]}" for r in mine],
            )
        )
    oldest_first = {"categoryorder": "array", "categoryarray": [r[0] for r in jobs], "autorange": "reversed"}
    return figure(go, traces, f"{unit} since created", "", yaxis={**oldest_first, "automargin": True})


def age_unit(seconds: float) -> tuple[int, str]:
    return (86400, "days") if seconds > 3 * 86400 else (3600, "hours")


def sync_health(go: Any, rows: dict[str, list[Any]]) -> Any:
    """Runs per day stacked by outcome; requests per day as a line on a second axis."""
    data = rows["sync_per_day"]
    if not data:
        return None
    traces = [
        go.Bar(name=f"{s} runs", x=xs, y=ys, marker_color=COLORS.get(s), width=DAY_MS * 0.8)
        for s, (xs, ys) in sorted(by_series([(r[0], r[1], r[2]) for r in data], x=str).items())
    ]
    requests: dict[str, int] = defaultdict(int)
    for r in data:
        requests[r[0]] += r[3] or 0
    traces.append(
        go.Scatter(
            name="requests",
            x=list(requests),
            y=list(requests.values()),
            yaxis="y2",
            mode="lines+markers",
            line={"color": "#444"},
        )
    )
    y2 = {"title": "requests", "overlaying": "y", "side": "right", "rangemode": "tozero", "tickmode": "auto"}
    days = sorted(requests)
    around = [
        str(date.fromisoformat(days[0]) - timedelta(1)),
        str(date.fromisoformat(days[-1]) + timedelta(1)),
    ]
    xaxis: dict[str, Any] = {"type": "date", "tickformat": "%b %d\n%Y", "range": around}
    if len(days) <= 14:
        xaxis["dtick"] = DAY_MS
    runs: dict[str, int] = defaultdict(int)
    for r in data:
        runs[r[0]] += r[2]
    yaxis = {"rangemode": "tozero", "dtick": 1 if max(runs.values()) <= 10 else None}
    layout = {"barmode": "stack", "xaxis": xaxis, "yaxis": yaxis, "yaxis2": y2, "margin": {"r": 70}}
    return figure(go, traces, "day (UTC)", "runs", **layout)
