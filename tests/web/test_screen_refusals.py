"""Refusals that retrying cannot change close a screen's socket with a code of their own."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from summitcast.services import locations
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from tests.web.presence_helpers import hall, token

pytestmark = pytest.mark.integration


def _refusal(client: TestClient, hb_token: str) -> tuple[dict[str, object], int, str]:
    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        ws.send_json({"type": "hb", "token": hb_token, "ack": True})
        refusal = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return refusal, closed.value.code, closed.value.reason


def test_revoked_location_is_closed_with_4403(client: TestClient, database: Database) -> None:
    location = hall(database)
    with database.session() as db:
        locations.revoke_location(db, db.get(Location, location.id))  # type: ignore[arg-type]

    seen = _refusal(client, token(location))

    assert seen == ({"type": "error", "reason": "revoked"}, 4403, "revoked")


def test_wrong_secret_and_unknown_location_are_closed_with_4401(
    client: TestClient, database: Database
) -> None:
    location = hall(database)
    wrong = _refusal(client, token(location, secret="an-old-secret-that-was-re-issued"))
    location.public_id = "nosuchlocation"
    unknown = _refusal(client, token(location, secret="any-secret"))

    assert wrong == ({"type": "error", "reason": "bad_signature"}, 4401, "bad_signature")
    assert unknown == ({"type": "error", "reason": "unknown_location"}, 4401, "unknown_location")


def test_pending_location_keeps_its_socket_to_count_once_approved(
    client: TestClient, database: Database
) -> None:
    location = hall(database, approve=False)

    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "hb", "token": token(location, 0), "ack": True})
        pending = ws.receive_json()
        with database.session() as db:
            locations.approve_location(db, db.get(Location, location.id))  # type: ignore[arg-type]
        client.app.state.live.forget_identity(location.public_id)  # type: ignore[attr-defined]
        ws.send_json({"type": "hb", "token": token(location, 1), "ack": True})
        counted = ws.receive_json()

    assert (pending, counted) == ({"type": "error", "reason": "pending"}, {"type": "ack", "seq": 1})
