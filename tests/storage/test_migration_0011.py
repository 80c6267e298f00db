"""Migration 0011 indexes the dashboard's arrivals and drops, and the queries use the indexes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from summitcast.services import locations
from summitcast.storage.tables import Summit
from tests.storage.conftest import downgrade, migrate

pytestmark = pytest.mark.integration

NOW = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)
INDEXES = {"ix_locations_summit_id_last_online_at", "ix_locations_summit_id_last_offline_at"}
PER_SUMMIT = 2000


def _seed_revision_0010(connection: sa.Connection) -> int:
    """Two summits of many locations, most of them seen online and some gone; the first's id."""
    meta = sa.MetaData()
    meta.reflect(connection, only=["summits", "locations"])
    summits, table = meta.tables["summits"], meta.tables["locations"]
    ids = []
    for slug in ("alpha", "beta"):
        ids.append(
            connection.execute(
                summits.insert().returning(summits.c.id),
                {
                    "slug": slug,
                    "title": slug.title(),
                    "description": "",
                    "time_zone": "UTC",
                    "start_date": date(2027, 7, 17),
                    "end_date": date(2027, 7, 18),
                    "languages": ["en"],
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            ).scalar_one()
        )
    rows = []
    for summit_id in ids:
        for n in range(PER_SUMMIT):
            online = NOW + timedelta(seconds=n) if n % 10 else None
            offline = NOW + timedelta(seconds=n + 30) if n % 3 == 0 else None
            rows.append(
                {
                    "summit_id": summit_id,
                    "public_id": f"pub-{summit_id}-{n}",
                    "label": f"Hall {n}",
                    "country": ("DE", "KE", "BR")[n % 3],
                    "city": "",
                    "kind": "hall",
                    "expected_audience": 10,
                    "contact": "",
                    "privacy_level": "public",
                    "status": "approved",
                    "secret": "s" * 64,
                    "created_at": NOW,
                    "last_online_at": online,
                    "last_offline_at": offline,
                }
            )
    connection.execute(table.insert(), rows)
    return ids[0]


def _location_indexes(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return {str(i["name"]) for i in sa.inspect(connection).get_indexes("locations")}


def _plans_of_dashboard_lists(engine: sa.Engine, summit_id: int) -> list[str]:
    """The query plans of newest_arrivals and recent_drops, as the database explains them."""
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "last_o" in statement:
            statements.append((statement, parameters))

    with Session(engine) as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            arrivals = locations.newest_arrivals(db, summit)
            drops = locations.recent_drops(db, summit)
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(arrivals) == 20
    assert len(drops) == 20
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE locations")
        for statement, parameters in statements:
            rows = connection.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


def test_migration_0011_adds_the_indexes_the_dashboard_lists_use(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0010")
    with empty_engine.begin() as connection:
        summit_id = _seed_revision_0010(connection)

    migrate(empty_engine, "0011")
    indexes_at_0011 = _location_indexes(empty_engine)
    # The lists are read through today's services and ORM tables, which may have columns
    # that 0011 does not: read them at the newest revision (no later one drops these).
    migrate(empty_engine, "head")

    assert indexes_at_0011 >= INDEXES
    arrivals_plan, drops_plan = _plans_of_dashboard_lists(empty_engine, summit_id)
    assert "ix_locations_summit_id_last_online_at" in arrivals_plan
    assert "ix_locations_summit_id_last_offline_at" in drops_plan
    for plan in (arrivals_plan, drops_plan):
        # Read in order from the index: no sort of the summit's locations.
        assert "TEMP B-TREE" not in plan
        assert "Sort" not in plan


def test_migration_0011_downgrade_drops_only_its_indexes(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0010")
    with empty_engine.begin() as connection:
        _seed_revision_0010(connection)
    before = _location_indexes(empty_engine)
    migrate(empty_engine, "0011")

    downgrade(empty_engine, "0010")

    assert _location_indexes(empty_engine) == before
    assert not INDEXES & before
    with empty_engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM locations")).scalar_one()
    assert count == 2 * PER_SUMMIT
