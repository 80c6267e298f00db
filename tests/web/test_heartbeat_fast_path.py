"""The heartbeat POST answered by the fast path: same answers, its own body cap and headers."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import make_summit

pytestmark = pytest.mark.integration


def _token(database: Database) -> str:
    summit = make_summit(database)
    with database.session() as db:
        location = locations.register_location(
            db,
            db.get(Summit, summit.id),  # type: ignore[arg-type]
            LocationInput(label="Hall", country="KE", city="Nairobi"),
            at_risk=frozenset(),
        )
        locations.approve_location(db, location)
        secret, public_id = location.secret, location.public_id
    beat = sign_heartbeat(secret.encode(), public_id, "epoch-one", 0, int(time.time()))
    return encode_heartbeat(beat)


def test_heartbeat_answer_carries_json_and_security_headers(
    client: TestClient, database: Database
) -> None:
    answer = client.post("/live/heartbeat", content=json.dumps({"token": _token(database)}))

    assert answer.status_code == 200
    assert answer.json()["ok"] is True
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "set-cookie" not in answer.headers  # no session on the heartbeat path


def test_oversized_heartbeat_is_413_with_a_reason(client: TestClient) -> None:
    answer = client.post("/live/heartbeat", content=b"{" + b" " * (17 * 1024) + b"}")

    assert answer.status_code == 413
    assert answer.json()["detail"] == "A heartbeat is at most 16 KiB."


def test_garbage_heartbeat_is_400_and_other_posts_pass_through(client: TestClient) -> None:
    garbage = client.post("/live/heartbeat", content=b"\xff\xfe not json")
    elsewhere = client.post("/live/heartbeats", content=b"{}")

    assert (garbage.status_code, garbage.json()) == (400, {"ok": False, "reason": "malformed"})
    assert elsewhere.status_code in (404, 405)
