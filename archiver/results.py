"""A result file's bytes -> (step, metric, value) rows, strictly: what cannot be read is kept with why.

A result file is a CSV with a header and one row per training step; its columns differ by
provider, method and date, so every column but `step` is a metric, known or not. Since about
mid-2024 OpenAI serves it as base64 of the CSV, older jobs as the CSV itself: the body counts as
base64 only when it decodes (validating) to text whose first line names a `step` column. The
gateway wraps a text/plain body as JSON {"html-message": "<body>"}; that wrapper is opened first.
"""

import base64
import binascii
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field

STEP = re.compile(r"\s*\+?\d{1,18}\s*")


@dataclass
class Parsed:
    """What a result file holds: how it was encoded (None: unreadable), its metrics, and the
    rows (or the whole file, line None) that could not be read, each with its reason."""

    encoding: str | None
    metrics: list[tuple[int, str, float]] = field(default_factory=list)  # (step, metric, value)
    rejects: list[tuple[int | None, str, str]] = field(default_factory=list)  # (line, reason, raw)


def parse_result_file(body: bytes, content_type: str | None = None) -> Parsed:
    """The metrics of a result file as received; never raises on bad input."""
    encoding, text, why = decode(body, content_type)
    if text is None or encoding is None:
        return Parsed(None, [], [(None, why, body[:2000].decode("utf-8", "replace"))])
    return parse_csv(text, encoding)


def decode(body: bytes, content_type: str | None) -> tuple[str | None, str | None, str]:
    """(encoding, the CSV's text, why not): base64 of a CSV, or a CSV."""
    wrapper = ""
    if (content_type or "").split(";")[0].strip().lower() == "application/json":
        try:
            wrapped = json.loads(body)
        except ValueError:
            wrapped = None
        if isinstance(wrapped, dict) and isinstance(wrapped.get("html-message"), str):
            body, wrapper = wrapped["html-message"].encode(), "html-message "
    if not body.strip():
        return None, None, "the file is empty"
    try:
        decoded = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is not None:
        text = utf8(decoded)
        if text is not None and has_header(text):
            return wrapper + "base64", text, ""
    text = utf8(body)
    if text is None:
        return None, None, "neither a CSV in UTF-8 nor base64 of one"
    if not has_header(text):
        return None, None, "not a result CSV: its first line names no step column"
    return wrapper + "csv", text, ""


def utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def has_header(text: str) -> bool:
    first = text.lstrip().partition("\n")[0]
    return "step" in (cell.strip() for cell in first.split(","))


def parse_csv(text: str, encoding: str) -> Parsed:
    parsed = Parsed(encoding)
    reader = csv.reader(io.StringIO(text.lstrip()))
    try:
        header = [name.strip() for name in next(reader)]
        doubled = sorted({name for name in header if header.count(name) > 1})
        if doubled or "" in header:
            why = f"column {doubled[0]!r} appears twice" if doubled else "a column has no name"
            return Parsed(None, [], [(1, f"not a result CSV: {why}", ",".join(header))])
        at = header.index("step")
        steps: set[int] = set()
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            problem = row_problem(row, header, at, steps)
            if problem:
                parsed.rejects.append((reader.line_num, problem, line_text(row)))
                continue
            step = int(row[at])
            steps.add(step)
            parsed.metrics += [
                (step, name, float(cell))
                for name, cell in zip(header, row, strict=True)
                if name != "step" and cell.strip()
            ]
    except csv.Error as e:
        parsed.rejects.append((reader.line_num, f"not CSV from here on: {e}", ""))
    return parsed


def row_problem(row: list[str], header: list[str], at: int, steps: set[int]) -> str | None:
    """Why a row cannot be read, or None."""
    if len(row) != len(header):
        return f"{len(row)} cells where the header has {len(header)}"
    if not STEP.fullmatch(row[at]):
        return f"step {row[at]!r} is not a whole number"
    if int(row[at]) in steps:
        return f"step {int(row[at])} appears again"
    for name, cell in zip(header, row, strict=True):
        if name != "step" and cell.strip() and not finite(cell):
            return f"{name} {cell!r} is not a finite number"
    return None


def finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def line_text(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()
