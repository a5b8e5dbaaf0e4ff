"""The commands a newcomer reaches for: `tables`, `query` with parameters, `status --json`, reports that
say why they are empty, and help that lists the commands in the order they are used."""

import json

import sqlalchemy as sa

from tests.conftest import cli_env, run_cli


def test_tables_lists_every_table_and_view_with_its_columns(engine: sa.Engine) -> None:
    env = cli_env("http://127.0.0.1:9/v1", ARCHIVER_DATABASE_URL=engine.url.render_as_string(False))
    result = run_cli("tables", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {(t["name"], t["kind"]): t["columns"].split(", ") for t in json.loads(result.stdout)}
    inspector = sa.inspect(engine)
    expected = {
        (name, kind): [c["name"] for c in inspector.get_columns(name)]
        for kind, names in (("table", inspector.get_table_names()), ("view", inspector.get_view_names()))
        for name in names
        if name != "alembic_version"
    }
    assert listed == expected
    assert {"jobs", "job_summary", "sync_runs", "sync_run_summary"} <= {name for name, _ in listed}
