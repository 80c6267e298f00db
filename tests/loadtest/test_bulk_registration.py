"""register_locations_bulk: many approved locations in batches, with the usual rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from summitcast.errors import ValidationError
from summitcast.services import locations
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from tests.conftest import TEST_LINKS, make_summit

pytestmark = pytest.mark.integration


def _inputs(count: int) -> list[locations.LocationInput]:
    return [
        locations.LocationInput(
            label=f"Hall {i}", country=("DE", "KE")[i % 2], city="Berlin" if i % 2 == 0 else ""
        )
        for i in range(count)
    ]


def test_register_locations_bulk_approves_in_batches(database: Database) -> None:
    summit = make_summit(database)
    batches: list[int] = []
    with database.session() as db:
        made = locations.register_locations_bulk(
            db, summit, _inputs(25), links=TEST_LINKS, batch_size=10, on_batch=batches.append
        )
    with database.session() as db:
        statuses = db.execute(select(Location.status, func.count()).group_by(Location.status)).all()
        identity = locations.load_identity(db, made[0].location_id, TEST_LINKS)
    assert (batches, [tuple(row) for row in statuses]) == ([10, 10, 5], [("approved", 25)])
    assert identity is not None
    assert (identity.secret, identity.status) == (made[0].secret.encode(), "approved")


def test_register_locations_bulk_pending_when_not_approved(database: Database) -> None:
    summit = make_summit(database)
    with database.session() as db:
        locations.register_locations_bulk(db, summit, _inputs(3), links=TEST_LINKS, approve=False)
    with database.session() as db:
        assert locations.status_counts(db, summit)["pending"] == 3


def test_register_locations_bulk_keeps_public_city_only(database: Database) -> None:
    summit = make_summit(database)
    inputs = [
        locations.LocationInput(label="a", country="DE", city="Berlin", privacy_level="public"),
        locations.LocationInput(label="b", country="DE", city="Berlin", privacy_level="country"),
    ]
    with database.session() as db:
        locations.register_locations_bulk(db, summit, inputs, links=TEST_LINKS)
    with database.session() as db:
        rows = db.execute(select(Location.label, Location.city).order_by(Location.label)).all()
    assert [tuple(r) for r in rows] == [("a", "Berlin"), ("b", "")]


def test_register_locations_bulk_refuses_unknown_country(database: Database) -> None:
    summit = make_summit(database)
    bad = [locations.LocationInput(label="x", country="QQ")]
    with database.session() as db, pytest.raises(ValidationError):
        locations.register_locations_bulk(db, summit, bad, links=TEST_LINKS)
