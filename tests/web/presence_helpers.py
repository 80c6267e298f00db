"""Locations and signed heartbeats for the web tests of the presence path."""

from __future__ import annotations

import time

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import TEST_LINKS, make_summit


def hall(database: Database, *, approve: bool = True) -> Location:
    """A location "Hall" in Nairobi in the test summit (made if needed), approved by default."""
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug="test-summit").one_or_none()
    if summit is None:
        summit = make_summit(database)
    with database.session() as db:
        location = locations.register_location(
            db,
            db.get(Summit, summit.id),  # type: ignore[arg-type]
            LocationInput(label="Hall", country="KE", city="Nairobi"),
            at_risk=frozenset(),
            links=TEST_LINKS,
        )
        if approve:
            locations.approve_location(db, location)
        return location


def token(location: Location, seq: int = 0, *, secret: str = "", epoch: str = "epoch-one") -> str:
    """A heartbeat token of ``location`` signed now (with its own secret unless given)."""
    heartbeat = sign_heartbeat(
        (secret or TEST_LINKS.open(location)).encode(),
        location.public_id,
        epoch,
        seq,
        int(time.time()),
    )
    return encode_heartbeat(heartbeat)
