"""Alembic environment: runs migrations on the connection summitcast hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from summitcast.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    """Migrate on the given connection, or on sqlalchemy.url when run from the alembic CLI."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as fresh:
            _migrate(fresh)
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    # render_as_batch lets ALTER TABLE work on SQLite, which cannot alter most constraints.
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
