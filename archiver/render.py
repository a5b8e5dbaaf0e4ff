"""Tables, reports and query results as text: a terminal table fitted to its width, CSV, JSON or
Markdown, whole or streamed row by row."""

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

FORMATS = ("table", "csv", "json", "markdown")


# Characters that would break a table's rows or columns in a terminal: C0/C1 controls (ESC
# included), DEL, the Unicode line and paragraph separators, and the bidi overrides that
# reorder what follows them. Tables show them escaped; CSV and JSON keep them as stored.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str) -> str:
    """The text with every control character escaped: a newline shows as \\n, ESC as \\x1b."""

    def escape(m: re.Match[str]) -> str:
        c = m[0]
        return NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return CONTROLS.sub(escape, text)


def cell(value: Any) -> str:
    """A value as a table shows it: floats rounded for reading, control characters escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    return visible(str(value))


def width(text: str) -> int:
    """Terminal cells: CJK and emoji take two, combining marks none (wcwidth, by grapheme)."""
    import wcwidth  # here, not at the top: its tables cost a sync 10 ms of start-up for nothing

    cells = wcwidth.wcswidth(text)
    return cells if cells >= 0 else len(text)


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record without its line end. The writer's terminator is \\r\\n so that it quotes a
    field holding either character (with \\n alone a bare \\r would end the record for readers)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["" if v is None else v for v in values])
    return out.getvalue().removesuffix("\r\n")


STREAMED = ("csv", "json", "markdown")  # the formats written row by row, in constant memory


def render(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, max_width: int | None = None
) -> str:
    """Rows as an aligned table, CSV, JSON (a list of objects) or a Markdown table.

    CSV and JSON carry the values exactly as stored; table and markdown are for reading. A table
    wider than `max_width` terminal cells has its widest columns cut, each cut value ending in "…".
    """
    if fmt in STREAMED:
        return "".join(render_stream(columns, rows, fmt)).removesuffix("\n")
    header = [visible(c) for c in columns]
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([width(c), *(width(r[i]) for r in text)]) for i, c in enumerate(header)]
    if max_width is not None:
        widths = fitted(widths, [width(c) for c in header], max_width)
    lines = [header, ["-" * w for w in widths], *text]
    return "\n".join(
        "  ".join(pad(c, w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def fitted(widths: list[int], headers: list[int], max_width: int) -> list[int]:
    """Column widths that fit `max_width` (with two cells between columns): columns up to some
    width keep theirs and the wider ones are cut to it, not below their header's width (or 6
    cells) while that fits, else not below 4 cells; what cannot fit even then is left at that."""
    room = max_width - 2 * (len(widths) - 1)
    if sum(widths) <= room:
        return widths
    floors = [min(w, max(h, 6)) for w, h in zip(widths, headers, strict=True)]
    if sum(floors) > room:
        floors = [min(w, 4) for w in widths]

    def capped(cap: int) -> list[int]:
        return [max(f, min(w, cap)) for w, f in zip(widths, floors, strict=True)]

    low, high = 0, max(widths)  # the widest cap that fits
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if sum(capped(mid)) <= room else (low, mid - 1)
    out = capped(low)
    for i in sorted(range(len(out)), key=lambda i: -widths[i]):  # cells left over: to the cut ones
        if sum(out) < room and out[i] < widths[i]:
            out[i] += 1
    return out


def pad(text: str, cells: int) -> str:
    """`text` in exactly `cells` terminal cells: padded with spaces, or cut and ended with "…"."""
    have = width(text)
    if have <= cells:
        return text + " " * (cells - have)
    import wcwidth

    out, used = [], 0
    for char in text:
        w = max(wcwidth.wcwidth(char), 0)
        if used + w > cells - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…" + " " * (cells - 1 - used)


def render_stream(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> Iterator[str]:
    """Rows as CSV, JSON or Markdown, a line at a time as they come (each piece ends a line or,
    for JSON, an item); joined, they are `render(...)` and a newline."""
    if fmt == "json":
        yield "["
        for n, row in enumerate(rows):
            item = json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False)
            yield item if n == 0 else ", " + item
        yield "]\n"
    elif fmt == "csv":
        yield csv_line(columns) + "\n"
        for row in rows:
            yield csv_line(row) + "\n"
    else:

        def line(cells: Iterable[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n"

        yield line(visible(c) for c in columns)
        yield line(["---"] * len(columns))
        for row in rows:
            yield line(cell(v) for v in row)
