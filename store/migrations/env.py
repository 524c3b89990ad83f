"""Alembic environment, configured in code: `store.migrations.upgrade_to_head` hands it a
connection; the `alembic` command (alembic.ini at the project root) gets its URL from
`-x url=…`, `sqlalchemy.url` or the Parcours settings (PARCOURS_DATABASE_URL / data dir)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def target_metadata() -> MetaData:
    """The models, for `alembic revision --autogenerate` and for comparisons; never used to create tables."""
    from store import models  # noqa: F401  (registers the tables)

    return SQLModel.metadata


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from parcours.settings import load_settings

    return load_settings().resolved_database_url


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        compare_type=True,
        # SQLite alters a table by copying it: batch mode does that for `op.batch_alter_table`.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    from store.db import normalise_url

    context.configure(url=normalise_url(database_url()), target_metadata=target_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from store.db import make_engine

    engine = make_engine(database_url())
    try:
        with engine.begin() as own:
            run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
