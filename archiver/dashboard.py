"""The archive as one self-contained HTML dashboard, and a report as an HTML table page.

Charts are drawn by plotly (the optional `dashboard` extra), whose JavaScript is inlined once into
the page, so the file opens from disk with no server and no network; a Content-Security-Policy in the
page forbids any fetch. Why plotly, from the candidates measured for seven charts on this machine:
plotly builds them in about 0.2 s and 50 MB against 2.8 s and 80 MB for matplotlib (whose inline SVG
keeps the file at 0.3 MB where plotly's is 4.8 MB, almost all of it plotly.js, read once from disk);
its charts keep exact values in hover, zoom and legend toggles; it depends on nothing heavy (no
numpy). Bokeh draws on a canvas and altair needs vl-convert to inline vega offline. Every number is
aggregated in SQL on the views (charts.py; portable: SQLite and PostgreSQL), so no job row is loaded
into Python: a 100,000-job archive renders in 2.2 to 3.5 s with a peak of 107 MB (SQLite; 116 MB on
PostgreSQL) on a shared 2-core machine, most of it the queries (benchmarks/dashboard.py).
"""

import html
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from archiver import charts, detail_charts
from archiver.errors import ConfigError
from archiver.health import routes_listing
from archiver.render import cell
from archiver.verify import audit_lines

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


def render(conn: Connection, *, now: float | None = None) -> str:
    """The archive as one HTML page: charts of activity, durations, failures, tokens, jobs in flight,
    sync health, coverage and loss curves, with plotly.js inlined (needs the `dashboard` extra: plotly).

    conn: a connection to the archive (SQLite or PostgreSQL), read only.
    now: Unix seconds to measure ages from (the time of the call by default).
    Raises ConfigError when plotly is not installed.
    """
    go, plotly_js = load_plotly()
    now = time.time() if now is None else now
    queries = {**charts.QUERIES, **detail_charts.QUERIES}
    rows = {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in queries.items()}
    tables = {
        "failures": table(["code", "message", "jobs"], rows["failure_messages"]),
        "in_flight": in_flight_table(rows, now),
        "coverage": gaps_table(rows),
    }
    audit = "".join(f'<p class="audit">{html.escape(line)}</p>' for line in audit_lines(conn))
    audit += routes_table(conn)
    drawn = charts.draw(go, rows, now) + detail_charts.draw(go, rows)
    cards = "\n".join(card(key, title, fig, tables.get(key, "")) for key, title, fig in drawn)
    return page(
        "Fine-tuning job archive",
        f"{summary(rows, now)}{audit}<main>{cards}</main>",
        head=f"<script>{plotly_js}</script>",
        script=DRAW,
    )


def load_plotly() -> tuple[Any, str]:
    try:
        import plotly.graph_objects as go
        import plotly.offline
    except ImportError:
        raise ConfigError(
            "the dashboard needs plotly: pip install '.[dashboard]' in archiver's source tree"
        ) from None
    return go, plotly.offline.get_plotlyjs()


def summary(rows: dict[str, list[Any]], now: float) -> str:
    jobs, succeeded, failed, moving, trained, vanished = rows["totals"][0]
    last = rows["last_run"][0] if rows["last_run"] else None
    gaps = rows["gaps"]
    tiles = [
        ("jobs archived", f"{jobs:,}"),
        ("succeeded", f"{succeeded or 0:,}"),
        ("failed", f"{failed or 0:,}"),
        ("in flight", f"{moving or 0:,}"),
        ("tokens trained", f"{int(trained or 0):,}"),
        ("last sync", f"{last[0]} UTC, {last[1]}" if last else "never"),
        ("open gaps", f"{len(gaps)} ({sum(1 for g in gaps if g[4])} blocked)"),
        ("vanished jobs", f"{vanished or 0:,}"),
        ("rejected items", f"{rows['rejected'][0][0]:,}"),
    ]
    cells = "".join(f"<div><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for k, v in tiles)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = "<h1>Fine-tuning job archive</h1>"
    alert = ""
    if last and last[1] != "succeeded":  # the failure's own words, where a person looks first
        why = f": {last[2]}" if last[2] else ""
        alert = f'<p class="alert">The last sync ({last[0]} UTC) {html.escape(last[1] + why)}</p>'
    return f'<header>{title}<p>as of {stamp}</p>{alert}<div class="tiles">{cells}</div></header>'


def routes_table(conn: Connection) -> str:
    """With more than one route: each route's provider, jobs, last run and coverage."""
    routes = routes_listing(conn, {})
    if len(routes) < 2:
        return ""
    keys = ["route", "provider", "jobs", "last_run_status", "last_run_utc", "coverage"]
    cols = ["route", "provider", "jobs", "last run", "at (UTC)", "coverage"]
    return f'<div class="routes">{table(cols, [tuple(r[k] for k in keys) for r in routes])}</div>'


def in_flight_table(rows: dict[str, list[Any]], now: float) -> str:
    jobs = rows["in_flight"]
    if not jobs:
        return ""
    body = [(r[0], r[1], r[2], r[3], r[5], f"{(now - r[4]) / 3600:,.1f}" if r[4] else "", r[6]) for r in jobs]
    total = rows["totals"][0][3] or 0
    more = f"<p>the {len(jobs)} oldest of {total:,} are listed</p>" if total > len(jobs) else ""
    cols = ["id", "status", "model", "provider", "created (UTC)", "hours", "estimated finish (UTC)"]
    return table(cols, body) + more


def gaps_table(rows: dict[str, list[Any]]) -> str:
    if not rows["gaps"] and not rows["succeeded_runs"][0][0]:
        return "<p>No sync has succeeded yet: the job listing has not been walked to its end.</p>"
    if not rows["gaps"]:
        return "<p>No open gaps: every part of the job listing has been walked.</p>"
    body = [
        (g[0], g[1] or "(head)", g[2] or "(end of history)", utc(g[3]), g[4], utc(g[5])) for g in rows["gaps"]
    ]
    return table(["gap", "after", "until", "opened (UTC)", "blocked reason", "blocked (UTC)"], body)


def utc(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


WIDE = ("in_flight",)  # a chart with its table beside it, across the page


def card(key: str, title: str, fig: Any, extra: str) -> str:
    if fig is None:
        chart = '<p class="empty">Nothing to show yet.</p>'
    else:
        spec = fig.to_plotly_json()
        payload = json.dumps({"data": spec["data"], "layout": spec["layout"]}, default=str)
        payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        chart = (
            f'<div class="chart" id="chart-{key}"></div><script type="application/json">{payload}</script>'
        )
    wide = ' class="wide"' if key in WIDE else ""
    body = f'<div class="body"><div class="plot">{chart}</div><div class="side">{extra}</div></div>'
    return f'<section data-chart="{key}"{wide}><h2>{html.escape(title)}</h2>{body}</section>'


def table(columns: list[str], rows: list[Any]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """One report as a standalone HTML page (`archiver report NAME --format html`); every value escaped.

    title: the page's heading; columns: the column names; rows: the values, one tuple per row.
    """
    count = f"<p>{len(rows):,} row{'' if len(rows) == 1 else 's'}</p>"
    return page(title, f"<header><h1>{html.escape(title)}</h1>{count}</header>{table(columns, rows)}")


# Errors (a script error, a blocked fetch) are written into the page, where a test or a person sees them.
CATCH = """
window.archiverErrors = [];
function archiverError(message) {
  window.archiverErrors.push(String(message));
  document.documentElement.dataset.errors = window.archiverErrors.join(" | ");
}
window.addEventListener("error", function (e) { archiverError(e.message); });
window.addEventListener("unhandledrejection", function (e) { archiverError(e.reason); });
document.addEventListener("securitypolicyviolation", function (e) {
  archiverError("blocked " + e.blockedURI);
});
"""
DRAW = """
var drawn = Array.prototype.map.call(document.querySelectorAll("div.chart"), function (div) {
  var spec = JSON.parse(div.nextElementSibling.textContent);
  return Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true});
});
Promise.all(drawn).then(function () {
  // a table cut off by its card is an error too: a person would not see all of it
  Array.prototype.forEach.call(document.querySelectorAll("section .side"), function (side) {
    if (side.scrollWidth > side.clientWidth + 1) {
      archiverError("clipped: the table of " + side.closest("section").dataset.chart);
    }
  });
  document.documentElement.dataset.rendered = window.archiverErrors.length ? "errors" : "ok";
}, archiverError);
"""
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 24px 24px; color: #222; background: #fafafa; }
header .tiles { display: flex; flex-wrap: wrap; gap: 8px; }
header .tiles div { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; }
header .tiles b { display: block; font-size: 18px; } header .tiles span { color: #666; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(620px, 1fr)); gap: 16px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 16px; overflow-x: auto; }
h2 { font-size: 16px; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: left; vertical-align: top; }
td { white-space: pre-wrap; } .empty { color: #888; }
.wide { grid-column: 1 / -1; } .wide .side { max-height: 420px; overflow-y: auto; }
.wide table { width: 100%; } .wide td { overflow-wrap: anywhere; }
.audit { color: #555; margin: 2px 0; font-size: 13px; }
.alert { background: #fdecea; border: 1px solid #d62728; border-radius: 6px; padding: 8px 14px; }
"""


def page(title: str, body: str, *, head: str = "", script: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style><script>{CATCH}</script>{head}</head>
<body>{body}<script>{script}</script></body></html>
"""
