"""Alembic environment: runs on the connection archiver passes in (or ARCHIVER_DATABASE_URL)."""

import os

from alembic import context
from sqlalchemy import create_engine

from archiver.db import parse_url
from archiver.models import metadata

config = context.config


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # the plain `alembic` command, for developers
    url = parse_url(os.environ.get("ARCHIVER_DATABASE_URL", "archive.db"))
    with create_engine(url).begin() as conn:
        run(conn)
