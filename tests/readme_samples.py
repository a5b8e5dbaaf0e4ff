"""The sample report outputs of docs/reports.md (linked from the README), made by running `archiver
report` on the tests' small archive.

    python tests/readme_samples.py      # rewrites the samples in docs/reports.md

The archive is the one tests/test_reports.py builds (build_archive: eight jobs, two syncs, every
clock fixed), in a temporary SQLite file; tests/test_readme.py fails when docs/reports.md differs
from what this writes, on SQLite and on PostgreSQL.
"""

import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: import the tests package from the checkout
    sys.path.insert(0, str(ROOT))

from archiver import db, reports  # noqa: E402
from archiver.cli import cli  # noqa: E402
from tests.test_reports import build_archive  # noqa: E402

README = ROOT / "docs" / "reports.md"  # where the samples live (the README links to it)
BEGIN = "<!-- report samples: made by tests/readme_samples.py from tests/test_reports.py's archive -->\n"
END = "<!-- end of report samples -->\n"
# Parameters that have no fixed default: the samples name them, so each command prints what is shown.
ARGS = {"job_timeline": ["--param", "job_id=ftjob-a2"], "in_flight": ["--param", "now=2026-02-11"]}
ARGS |= {
    "training_curve": ["--param", "job_id=ftjob-a2"],
    "model_comparison": ["--param", "model=gpt-4o-mini"],
}


def samples(url: str) -> str:
    """Every report's heading and its output, as `archiver report NAME` prints it for the archive at `url`."""
    out = []
    for name in reports.names():
        args = ["report", name, *ARGS.get(name, [])]
        result = CliRunner().invoke(cli, [*args, "--db", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out.append(f"**`{name}`**: {reports.describe(name)}\n\n```\n$ archiver {' '.join(args)}\n")
        out.append(result.stdout + "```\n\n")
    return "".join(out)


def build(url: str) -> None:
    engine = db.make_engine(db.parse_url(url))
    try:
        db.upgrade(engine)
        build_archive(engine)
    finally:
        engine.dispose()


def in_readme(text: str) -> str:
    """The samples part of a README text (between the markers)."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN.strip()} ... {END.strip()} markers")
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = sa.URL.create("sqlite", database=str(Path(tmp) / "archive.db")).render_as_string()
        build(url)
        made = samples(url)
    text = README.read_text()
    README.write_text(text.replace(BEGIN + in_readme(text) + END, BEGIN + made + END))
    print(f"{README}: {'unchanged' if made == in_readme(text) else 'samples rewritten'}")


if __name__ == "__main__":
    main()
