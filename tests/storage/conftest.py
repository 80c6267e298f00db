"""Fixtures of the migration tests: an engine on an empty database, moved between revisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from summitcast.storage.database import alembic_config, make_engine
from tests.conftest import scratch_postgres


def migrate(engine: sa.Engine, revision: str) -> None:
    """Upgrade the engine's database to ``revision``."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Downgrade the engine's database to ``revision``."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on a database with no schema at all (its own PostgreSQL database)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    with scratch_postgres("summitcast_migration") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


_FILLERS: tuple[tuple[type, object], ...] = (
    (sa.Boolean, False),
    (sa.Integer, 0),
    (sa.LargeBinary, b""),
    (sa.JSON, []),
    (sa.DateTime, datetime(2027, 7, 17, 12, 0, tzinfo=UTC)),
    (sa.Date, date(2027, 7, 17)),
    (sa.String, ""),
)


def insert_row(connection: sa.Connection, table: str, **values: object) -> int:
    """Insert one row into a table as the database has it now; return its id.

    Required columns not given are filled with a blank of their type, so that seeding
    for an old revision needs neither today's ORM tables nor every column listed.
    """
    meta = sa.MetaData()
    meta.reflect(connection, only=[table])
    reflected = meta.tables[table]
    row = dict(values)
    for column in reflected.columns:
        required = not column.nullable and column.server_default is None
        if column.name in row or column.primary_key or not required:
            continue
        if column.foreign_keys:
            raise TypeError(f"{table}.{column.name} is a required foreign key: give its value")
        row[column.name] = next(blank for kind, blank in _FILLERS if isinstance(column.type, kind))
    return int(connection.execute(reflected.insert().returning(reflected.c.id), row).scalar_one())
