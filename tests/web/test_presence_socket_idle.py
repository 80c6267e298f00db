"""A presence socket closes itself after two silent timeouts (it replaces protocol pings)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import make_summit

pytestmark = pytest.mark.integration


def _approved(database: Database) -> Location:
    summit = make_summit(database)
    with database.session() as db:
        location = locations.register_location(
            db,
            db.get(Summit, summit.id),  # type: ignore[arg-type]
            LocationInput(label="Hall", country="KE", city="Nairobi"),
            at_risk=frozenset(),
        )
        locations.approve_location(db, location)
        return location


def _beat(location: Location, seq: int) -> dict[str, object]:
    token = sign_heartbeat(
        location.secret.encode(), location.public_id, "epoch-one", seq, int(time.time())
    )
    return {"type": "hb", "token": encode_heartbeat(token), "ack": True}


def test_silent_socket_is_closed_after_two_timeouts(settings: Settings, database: Database) -> None:
    app = create_app(settings.model_copy(update={"heartbeat_timeout_s": 0.5}), database=database)
    location = _approved(database)
    with TestClient(app) as client, client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        ws.send_json(_beat(location, 0))
        ack = ws.receive_json()
        started = time.monotonic()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        waited = time.monotonic() - started

    assert ack == {"type": "ack", "seq": 0}
    assert (closed.value.code, closed.value.reason) == (1000, "no heartbeat")
    assert 0.9 <= waited < 5.0


def test_socket_that_keeps_beating_stays_open_past_the_timeout(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings.model_copy(update={"heartbeat_timeout_s": 0.5}), database=database)
    location = _approved(database)
    acks = []
    with TestClient(app) as client, client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        for seq in range(12):  # 2.4 s, more than two timeouts long
            ws.send_json(_beat(location, seq))
            acks.append(ws.receive_json()["seq"])
            time.sleep(0.2)

    assert acks == list(range(12))
