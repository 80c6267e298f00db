"""Alembic migrations build exactly the schema the tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from summitcast.storage.database import Database, alembic_config
from summitcast.storage.tables import Base

pytestmark = pytest.mark.integration


def test_migrations_form_one_line_of_history() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1


def test_migrated_schema_matches_tables(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_twice_is_harmless(database: Database) -> None:
    database.upgrade()
    database.upgrade()
    with database.engine.connect() as connection:
        version = MigrationContext.configure(connection).get_current_revision()
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
