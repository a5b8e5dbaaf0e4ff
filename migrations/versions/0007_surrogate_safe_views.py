"""job_history_fields on PostgreSQL reads an escaped lone surrogate in `raw` as U+FFFD.

archiver writes a string the API sent with a lone surrogate as the escape \\udXXX (JSON's own
form). PostgreSQL's json type refuses any text holding one, so a single such job made every query
of the view fail, for every job. Now those escapes become \\ufffd with the \\u0000 ones, as the typed
columns of the tables hold them. SQLite's view is unchanged: its json_extract takes the escape and
gives the member as bytes that are not UTF-8, which archiver's connections read as U+FFFD (db.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def sibling(name: str):  # type: ignore[no-untyped-def]
    """Another revision's module (for the views it defines)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HIGH = "\\\\u[dD][89abAB][0-9a-fA-F]{2}"  # the regular expression of an escaped high surrogate
LOW = "\\\\u[dD][c-fC-F][0-9a-fA-F]{2}"


def safe_raw(raw: str) -> str:
    """PostgreSQL: `raw` with each \\u0000 escape, and each escaped surrogate that is not half of a
    pair, made \\ufffd (a pair, as an emoji is escaped, stays); every escaped backslash is set
    aside first (as U+0001, which JSON text never holds unescaped), so the text \\\\ud800 (a
    backslash, then ud800) stays."""
    swapped = f"replace({raw}::text, '\\\\', chr(1))"
    nul = f"replace({swapped}, '\\u0000', '\\ufffd')"
    high = f"regexp_replace({nul}, '{HIGH}(?!{LOW})', '\\ufffd', 'g')"
    low = f"regexp_replace({high}, '(?<!{HIGH}){LOW}', '\\ufffd', 'g')"
    return f"replace({low}, chr(1), '\\\\')::json"


def views(d: str) -> dict[str, str]:
    """0006's job_history_fields over this `raw` (PostgreSQL only)."""
    if d != "postgresql":
        return {}
    old = sibling("0006_nul_safe_views.py")
    body = sibling("0004_views.py").views(d)["job_history_fields"]
    source = f"(SELECT {old.HISTORY_COLUMNS}, {safe_raw('h.raw')} AS raw FROM job_history h) h"
    return {"job_history_fields": body.rstrip().removesuffix("job_history h") + source}


def upgrade() -> None:
    for name, body in views(op.get_bind().dialect.name).items():
        op.execute(f"DROP VIEW {name}")
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    d = op.get_bind().dialect.name
    old = sibling("0006_nul_safe_views.py").views(d)
    for name in views(d):
        op.execute(f"DROP VIEW {name}")
        op.execute(f"CREATE VIEW {name} AS {old[name]}")
