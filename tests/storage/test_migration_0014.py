"""Migration 0014: demo summits, simulated locations and looping broadcasts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.storage.conftest import downgrade, migrate

pytestmark = pytest.mark.integration

SUMMITS = sa.table(
    "summits",
    sa.column("id"),
    sa.column("slug"),
    sa.column("title"),
    sa.column("description"),
    sa.column("time_zone"),
    sa.column("start_date"),
    sa.column("end_date"),
    sa.column("languages"),
    sa.column("created_at"),
    sa.column("updated_at"),
)
LOCATIONS = sa.table(
    "locations",
    sa.column("summit_id"),
    sa.column("public_id"),
    sa.column("label"),
    sa.column("country"),
    sa.column("city"),
    sa.column("kind"),
    sa.column("expected_audience"),
    sa.column("contact"),
    sa.column("privacy_level"),
    sa.column("status"),
    sa.column("secret"),
    sa.column("created_at"),
)


def _seed_summit_with_location(engine: sa.Engine, public_id: str = "real-1") -> None:
    with engine.begin() as connection:
        connection.execute(
            SUMMITS.insert().values(
                id=1,
                slug="s",
                title="S",
                description="",
                time_zone="UTC",
                start_date="2027-01-01",
                end_date="2027-01-02",
                languages="[]",
                created_at="2027-01-01 00:00:00",
                updated_at="2027-01-01 00:00:00",
            )
        )
        _add_location(connection, public_id)


def _add_location(connection: sa.Connection, public_id: str, **extra: object) -> None:
    values: dict[str, object] = {
        "summit_id": 1,
        "public_id": public_id,
        "label": public_id,
        "country": "DE",
        "city": "",
        "kind": "home",
        "expected_audience": 1,
        "contact": "",
        "privacy_level": "public",
        "status": "approved",
        "secret": "s" * 32,
        "created_at": "2027-01-01 00:00:00",
    }
    values.update(extra)
    table = LOCATIONS
    if "simulated" in extra:
        table = sa.table("locations", *(sa.column(name) for name in values))
    connection.execute(table.insert().values(**values))


def test_migration_0014_marks_existing_rows_real(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0013")
    _seed_summit_with_location(empty_engine)

    migrate(empty_engine, "0014")

    with empty_engine.connect() as connection:
        demo = connection.execute(sa.text("SELECT is_demo FROM summits")).scalar_one()
        simulated = connection.execute(sa.text("SELECT simulated FROM locations")).scalar_one()
    assert (bool(demo), bool(simulated)) == (False, False)


def test_migration_0014_downgrade_drops_simulated_locations(empty_engine: sa.Engine) -> None:
    migrate(empty_engine, "0014")
    _seed_summit_with_location(empty_engine)
    with empty_engine.begin() as connection:
        _add_location(connection, "sim-1", simulated=True)

    downgrade(empty_engine, "0013")

    with empty_engine.connect() as connection:
        left = connection.execute(sa.text("SELECT public_id FROM locations")).scalars().all()
        columns = {
            table: {c["name"] for c in sa.inspect(connection).get_columns(table)}
            for table in ("summits", "locations", "broadcasts")
        }
    assert left == ["real-1"]
    assert "is_demo" not in columns["summits"]
    assert "simulated" not in columns["locations"]
    assert "loop" not in columns["broadcasts"]
