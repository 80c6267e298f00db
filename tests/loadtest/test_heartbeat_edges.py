"""What the load tool relies on: the optional ack, the heartbeat fast path, 503 without Redis."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from summitcast.services.locations import BulkRegistered
from summitcast.storage.database import Database
from tests.conftest import TEST_LINKS, make_summit
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration


def _location(database: Database) -> BulkRegistered:
    summit = make_summit(database)
    with database.session() as db:
        inputs = [locations.LocationInput(label="Hall", country="DE")]
        return locations.register_locations_bulk(db, summit, inputs, links=TEST_LINKS)[0]


def _message(location: BulkRegistered, seq: int, **extra: object) -> str:
    beat = sign_heartbeat(
        location.secret.encode(), location.location_id, "epoch-load", seq, int(time.time())
    )
    return json.dumps({"type": "hb", "token": encode_heartbeat(beat), **extra})


def test_socket_acks_heartbeat_only_when_asked(client: TestClient, database: Database) -> None:
    location = _location(database)
    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        ws.send_text(_message(location, 0))  # no ack asked: nothing comes back
        ws.send_text(_message(location, 1, ack=True))
        first = ws.receive_json()
        ws.send_text(_message(location, 1, ack=True))  # a replay: refused, never acked
        second = ws.receive_json()
    assert (first, second) == ({"type": "ack", "seq": 1}, {"type": "error", "reason": "replay"})


def test_heartbeat_post_fast_path_counts_and_keeps_security_headers(
    client: TestClient, database: Database
) -> None:
    location = _location(database)
    response = client.post("/live/heartbeat", content=_message(location, 0))
    again = client.post("/live/heartbeat", content=_message(location, 0))
    assert (response.status_code, response.json()["ok"]) == (200, True)
    assert "x-content-type-options" in response.headers
    assert (again.status_code, again.json()) == (409, {"ok": False, "reason": "replay"})


def test_heartbeat_post_answers_503_while_redis_is_unreachable(
    settings: Settings, database: Database
) -> None:
    location = _location(database)
    # Nothing listens there: every Redis call fails at once.
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(
        settings.model_copy(update={"redis_url": nowhere, "redis_prefix": secrets.token_hex(4)}),
        database=database,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/live/heartbeat", content=_message(location, 0))
    assert (response.status_code, response.headers.get("retry-after")) == (503, "2")
