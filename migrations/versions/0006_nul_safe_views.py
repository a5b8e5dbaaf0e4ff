"""job_history_fields reads NUL as U+FFFD on both backends, whatever else the job holds.

0005 made PostgreSQL's extraction safe only for a member that itself holds \\u0000, but PostgreSQL
refuses to take any member out of a json value holding \\u0000 anywhere (a NUL in `metadata` broke
`finished_at`), and SQLite's json_extract cut the text at the NUL. Now the view reads `raw` with
every \\u0000 escape turned into \\ufffd first, as the typed columns of the tables hold it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

HISTORY_COLUMNS = "h.id, h.job_id, h.sync_run_id, h.observed_at, h.status, h.content_hash"


def sibling(name: str):  # type: ignore[no-untyped-def]
    """Another revision's module (for the views it defines)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_nul(raw: str, dialect: str) -> str:
    """The JSON text `raw` with each \\u0000 escape made \\ufffd, leaving an escaped backslash followed
    by `u0000` (the text \\u0000) alone: every `\\\\` pair is set aside first as a character that
    valid JSON text never holds unescaped (U+0001), then put back."""
    one = "chr(1)" if dialect == "postgresql" else "char(1)"
    text = f"{raw}::text" if dialect == "postgresql" else raw
    swapped = f"replace(replace({text}, '\\\\', {one}), '\\u0000', '\\ufffd')"
    safe = f"replace({swapped}, {one}, '\\\\')"
    return f"{safe}::json" if dialect == "postgresql" else safe


def views(d: str) -> dict[str, str]:
    """0004's job_history_fields (0004's extraction, no longer 0005's) over a NUL-free `raw`."""
    body = sibling("0004_views.py").views(d)["job_history_fields"]
    source = f"(SELECT {HISTORY_COLUMNS}, {without_nul('h.raw', d)} AS raw FROM job_history h) h"
    assert body.rstrip().endswith("FROM job_history h")
    return {"job_history_fields": body.rstrip().removesuffix("job_history h") + source}


def upgrade() -> None:
    d = op.get_bind().dialect.name
    for name, body in views(d).items():
        op.execute(f"DROP VIEW {name}")
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    d = op.get_bind().dialect.name
    old = sibling("0005_coverage.py").views(d)
    for name in views(d):
        op.execute(f"DROP VIEW {name}")
        op.execute(f"CREATE VIEW {name} AS {old[name]}")
