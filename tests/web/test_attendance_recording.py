"""Heartbeats accepted by the running app are counted into attendance_counts, at shutdown too."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services.attendance import stored_counts
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import TEST_LINKS
from tests.services.test_attendance import make_world

pytestmark = pytest.mark.integration


def test_accepted_heartbeats_are_flushed_at_shutdown(app, database: Database, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(database, settings, [("FR", "public")])
    location = world.locations[0]
    now = int(time.time())

    with TestClient(app, base_url="http://127.0.0.1") as client:
        for seq in range(3):
            token = encode_heartbeat(
                sign_heartbeat(
                    TEST_LINKS.open(location).encode(), location.public_id, "epoch-one", seq, now
                )
            )
            client.post("/live/heartbeat", content=json.dumps({"token": token}))
        replay = client.post("/live/heartbeat", content=json.dumps({"token": token}))
        assert replay.status_code == 409
        assert app.state.attendance.pending >= 1

    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        stored = [(location_id, n) for (location_id, _), n in stored_counts(db, summit).items()]
    # Three accepted, the replay refused; the open bucket was written at shutdown.
    # (Two rows only if the test straddles a 5-minute boundary; the sum is what counts.)
    assert {location_id for location_id, _ in stored} == {location.id}
    assert sum(n for _, n in stored) == 3
