"""Named reports from the sql/ files, ad-hoc read-only queries, and the output formats they share."""

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from archiver.db import resource_path
from archiver.errors import ConfigError
from archiver.models import sync_gaps, sync_runs

Table = tuple[list[str], list[tuple[Any, ...]]]
BIND = re.compile(r"(?<![:\w]):(\w+)")
ALWAYS = ("since", "until", "now", "limit")  # supplied by the command line, with defaults


def names() -> list[str]:
    return sorted(p.stem for p in resource_path("sql").glob("*.sql"))


def load(name: str) -> str:
    if name not in names():
        raise ConfigError(f"no report named {name!r}; the reports are: {', '.join(names())}")
    return (resource_path("sql") / f"{name}.sql").read_text()


def describe(name: str) -> str:
    """The report's question: its header comment up to the Parameters line."""
    lines = []
    for line in load(name).splitlines():
        if not line.startswith("--") or line.startswith("-- Parameters"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines)


def run_report(conn: Connection, name: str, params: dict[str, Any]) -> Table:
    """Run sql/<name>.sql with its named binds; every bind other than those in ALWAYS is required."""
    sql = load(name)
    binds = set(BIND.findall(sql))
    missing = sorted(binds - params.keys())
    if missing:
        raise ConfigError(f"report {name} needs " + " ".join(f"--param {m}=..." for m in missing))
    unknown = sorted(params.keys() - binds - set(ALWAYS))
    if unknown:
        raise ConfigError(f"report {name} takes no parameter {', '.join(unknown)}")
    result = conn.execute(text(sql), {k: params[k] for k in binds})
    return list(result.keys()), [tuple(row) for row in result]


def run_query(conn: Connection, sql: str) -> Table:
    """Ad-hoc SQL on a read-only connection: a write fails and changes nothing."""
    try:
        result = conn.exec_driver_sql(sql)
        if not result.returns_rows:
            return [], []
        return list(result.keys()), [tuple(row) for row in result]
    except DBAPIError as e:
        lines = str(e.orig).strip().splitlines() or [type(e.orig).__name__]
        raise ConfigError(f"query failed: {lines[0]}") from None


FORMATS = ("table", "csv", "json", "markdown")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    return str(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Rows as an aligned table, CSV, JSON (a list of objects) or a Markdown table."""
    if fmt == "json":
        return json.dumps(
            [dict(zip(columns, row, strict=True)) for row in rows], default=str, ensure_ascii=False
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    text = [[cell(v).replace("\n", "\\n") for v in row] for row in rows]
    if fmt == "markdown":
        lines = [columns, ["---"] * len(columns), *text]
        return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines)
    widths = [max([len(c), *(len(r[i]) for r in text)]) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *text]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def last_run(conn: Connection, status: str | None = None) -> Row[Any] | None:
    query = select(sync_runs).order_by(sync_runs.c.id.desc()).limit(1)
    if status:
        query = query.where(sync_runs.c.status == status)
    return conn.execute(query).first()


def partial_coverage(conn: Connection) -> list[tuple[str, float]]:
    """Why part of the history is unreachable through the route in use, and since when (sync.py's
    blocked gaps); empty when the archive covers the whole listing or predates sync_gaps."""
    if not inspect(conn).has_table("sync_gaps"):
        return []
    g = sync_gaps.c
    since = func.min(g.opened_at)
    query = select(g.blocked_reason, since).where(g.blocked_reason.is_not(None)).group_by(g.blocked_reason)
    return [(reason, opened) for reason, opened in conn.execute(query.order_by(since))]


def utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
