"""The presence fast path: the heartbeat POST's answers, body cap and headers; idle sockets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from summitcast.web.transport.presence_socket import serve_screen
from tests.web.presence_helpers import hall, token

pytestmark = pytest.mark.integration


def test_heartbeat_answer_carries_json_and_security_headers(
    client: TestClient, database: Database
) -> None:
    answer = client.post("/live/heartbeat", content=json.dumps({"token": token(hall(database))}))

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


def _hb(seq: int, location: Location) -> dict[str, object]:
    return {"type": "hb", "token": token(location, seq), "ack": True}


def test_silent_socket_is_closed_after_two_timeouts(settings: Settings, database: Database) -> None:
    app = create_app(settings.model_copy(update={"heartbeat_timeout_s": 0.5}), database=database)
    location = hall(database)
    with TestClient(app) as client, client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        ws.send_json(_hb(0, location))
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
    location = hall(database)
    acks = []
    with TestClient(app) as client, client.websocket_connect("/live/ws") as ws:
        ws.receive_json()  # hello
        for seq in range(12):  # 2.4 s, more than two timeouts long
            ws.send_json(_hb(seq, location))
            acks.append(ws.receive_json()["seq"])
            time.sleep(0.2)

    assert acks == list(range(12))


class _GoneDuringHandshake:
    """A socket whose client left while its handshake waited: uvicorn refuses the send."""

    def __init__(self, live: object) -> None:
        self.app = type("App", (), {"state": type("State", (), {"live": live})()})()
        self.sent: list[str] = []

    async def accept(self) -> None:
        """uvicorn drops the accept of a closing connection silently."""

    async def send_text(self, text: str) -> None:
        raise RuntimeError("Expected ASGI message 'websocket.accept' … but got 'websocket.send'.")


def test_presence_socket_of_a_client_gone_during_the_handshake_ends_quietly(
    client: TestClient,
) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    socket = _GoneDuringHandshake(state.live)

    asyncio.run(serve_screen(socket, state.live, state.presence_sockets))  # type: ignore[arg-type]

    assert socket.sent == []
