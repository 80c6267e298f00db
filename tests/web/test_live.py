"""The presence socket, the heartbeat fallback and live figure pushes, through the real app."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.services.live import LiveService
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import grant, log_in, make_summit, make_user
from tests.presence.conftest import REDIS_URL, redis_or_skip
from tests.services.backends import Flaky
from tests.web.presence_helpers import hall
from tests.web.presence_helpers import token as signed_token

pytestmark = pytest.mark.integration


def _online(client: TestClient) -> int:
    total: int = client.get("/live/s/test-summit/figures.json").json()["total"]
    return total


def test_socket_greets_with_interval_and_counts_valid_heartbeat(
    client: TestClient, database: Database
) -> None:
    location = hall(database)

    with client.websocket_connect("/live/ws") as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "hb", "token": signed_token(location)})
        # An unanswered heartbeat is an accepted one: ask for a refusal to sync with the server.
        ws.send_json({"type": "hb", "token": signed_token(location, 0)})
        refusal = ws.receive_json()
        online = _online(client)

    assert hello["type"] == "hello"
    assert 8.0 <= hello["interval_s"] <= 10.0
    assert hello["timeout_s"] == 35.0
    assert refusal == {"type": "error", "reason": "replay"}
    assert online == 1


def test_socket_forged_heartbeat_is_refused_closed_and_not_counted(
    client: TestClient, database: Database
) -> None:
    location = hall(database)

    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "hb", "token": signed_token(location, secret="not-the-secret")})
        refusal = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()

    assert refusal == {"type": "error", "reason": "bad_signature"}
    assert (closed.value.code, closed.value.reason) == (4401, "bad_signature")
    assert _online(client) == 0


def test_socket_pending_location_is_refused_but_kept_open(
    client: TestClient, database: Database
) -> None:
    location = hall(database, approve=False)

    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "hb", "token": signed_token(location, 0)})
        first = ws.receive_json()
        ws.send_json({"type": "hb", "token": signed_token(location, 1)})
        second = ws.receive_json()

    assert first == second == {"type": "error", "reason": "pending"}
    assert _online(client) == 0


def test_socket_binary_or_garbage_message_is_refused(
    client: TestClient, database: Database
) -> None:
    make_summit(database)

    with client.websocket_connect("/live/ws") as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00\x01")
        refusal = ws.receive_json()

    assert refusal == {"type": "error", "reason": "malformed"}


def test_http_heartbeat_valid_replayed_and_revoked(client: TestClient, database: Database) -> None:
    location = hall(database)
    token = signed_token(location)

    valid = client.post("/live/heartbeat", content=json.dumps({"type": "hb", "token": token}))
    replayed = client.post("/live/heartbeat", content=json.dumps({"token": token}))
    online_before = _online(client)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        grant(database, organiser, db.get(Summit, location.summit_id), Role.ORGANISER)  # type: ignore[arg-type]
    csrf = log_in(client, "org@example.org")
    client.post(
        "/backstage/s/test-summit/locations/revoke", data={"id": location.id, "csrf_token": csrf}
    )
    revoked = client.post(
        "/live/heartbeat", content=json.dumps({"token": signed_token(location, 1)})
    )

    assert valid.status_code == 200
    assert valid.json()["ok"] is True
    assert (replayed.status_code, replayed.json()) == (409, {"ok": False, "reason": "replay"})
    assert (revoked.status_code, revoked.json()) == (403, {"ok": False, "reason": "revoked"})
    assert (online_before, _online(client)) == (1, 0)


def test_http_heartbeat_malformed_body_is_refused(client: TestClient, database: Database) -> None:
    make_summit(database)

    response = client.post("/live/heartbeat", content=b"{not json")

    assert (response.status_code, response.json()) == (400, {"ok": False, "reason": "malformed"})


def test_public_socket_pushes_new_location_within_two_seconds(
    client: TestClient, database: Database
) -> None:
    location = hall(database)

    with client.websocket_connect("/live/s/test-summit/public") as ws:
        first = ws.receive_json()
        start = time.monotonic()
        client.post("/live/heartbeat", content=json.dumps({"token": signed_token(location)}))
        pushed = ws.receive_json()
        elapsed = time.monotonic() - start

    assert first["total"] == 0
    # One location in Kenya is below k = 5: counted, but its country stays hidden.
    assert (pushed["total"], pushed["countries"], pushed["elsewhere"]) == (1, {}, 1)
    assert elapsed < 2.0


def test_public_socket_unknown_summit_is_closed(client: TestClient, database: Database) -> None:
    make_summit(database)

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/live/s/nope/public") as ws,
    ):
        ws.receive_json()

    assert closed.value.code == 1008


def test_organiser_socket_refuses_anonymous_and_foreign_origin(
    client: TestClient, database: Database
) -> None:
    hall(database)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug="test-summit").one()
    grant(database, organiser, summit, Role.ORGANISER)

    url = "/backstage/s/test-summit/live"
    # The test client's sockets go to "testserver", so the cookie is handed over by hand.
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(url, headers={"origin": "http://testserver"}) as ws,
    ):
        ws.receive_json()
    log_in(client, "org@example.org")
    cookie = f"summitcast_session={client.cookies['summitcast_session']}"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(
            url, headers={"origin": "http://evil.example", "cookie": cookie}
        ) as ws,
    ):
        ws.receive_json()
    with client.websocket_connect(
        url, headers={"origin": "http://testserver", "cookie": cookie}
    ) as ws:
        figures = ws.receive_json()

    assert (figures["type"], figures["total"], figures["countries"]) == ("presence", 0, {})


def test_summit_page_shows_live_counters_and_map_link(
    client: TestClient, database: Database
) -> None:
    make_summit(database)

    page = client.get("/s/test-summit")
    live = client.get("/s/test-summit/live")

    assert 'id="online-now"' in page.text
    assert 'href="/s/test-summit/live"' in page.text
    assert 'href="/s/test-summit/register"' in page.text
    assert live.status_code == 200
    assert '<svg id="live-map"' in live.text


def test_redis_backend_from_settings_counts_and_pushes(
    settings: Settings, database: Database
) -> None:
    redis_or_skip()
    prefix = f"summitcast-test-{uuid.uuid4().hex}"
    app = create_app(
        settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": prefix}),
        database=database,
    )
    location = hall(database)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert type(app.state.live.presence).__name__ == "RedisPresence"
            with client.websocket_connect("/live/s/test-summit/public") as ws:
                first = ws.receive_json()
                client.post(
                    "/live/heartbeat", content=json.dumps({"token": signed_token(location)})
                )
                pushed = ws.receive_json()
    finally:
        keys = redis.Redis.from_url(REDIS_URL)
        stale = list(keys.scan_iter(match=f"{prefix}:*"))
        if stale:
            keys.delete(*stale)
        keys.close()

    assert (first["total"], pushed["total"]) == (0, 1)


def test_socket_outlives_a_backend_outage_and_counts_again_after_it(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    presence, pubsub = Flaky(MemoryPresence(settings.heartbeat_timeout_s)), Flaky(MemoryPubSub())
    app = create_app(settings, database=database, presence=presence, pubsub=pubsub)
    location = hall(database)

    with (
        TestClient(app, base_url="http://127.0.0.1") as client,
        client.websocket_connect("/live/ws") as ws,
    ):
        ws.receive_json()  # hello
        presence.down = pubsub.down = True
        ws.send_json({"type": "hb", "token": signed_token(location, 0), "ack": True})
        during = ws.receive_json()
        presence.down = pubsub.down = False
        ws.send_json({"type": "hb", "token": signed_token(location, 1), "ack": True})
        after = ws.receive_json()
        online = _online(client)

    assert during == {"type": "error", "reason": "unavailable"}
    assert after == {"type": "ack", "seq": 1}  # the same socket, counted again
    assert online == 1
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def test_fallback_heartbeat_and_figures_during_an_outage_are_503_with_retry_after(
    settings: Settings, database: Database
) -> None:
    presence = Flaky(MemoryPresence(settings.heartbeat_timeout_s))
    app = create_app(settings, database=database, presence=presence, pubsub=MemoryPubSub())
    location = hall(database)

    with TestClient(app, base_url="http://127.0.0.1") as client:
        presence.down = True
        refused = client.post(
            "/live/heartbeat", content=json.dumps({"token": signed_token(location)})
        )
        figures = client.get("/live/s/test-summit/figures.json")
        presence.down = False
        counted = client.post(
            "/live/heartbeat", content=json.dumps({"token": signed_token(location, 1)})
        )

    assert (refused.status_code, refused.headers["retry-after"]) == (503, "2")
    assert (refused.json()["ok"], refused.json()["reason"]) == (False, "unavailable")
    assert "briefly unavailable" in refused.json()["detail"]
    assert (figures.status_code, figures.json()["reason"]) == (503, "unavailable")
    assert counted.status_code == 200


def test_organiser_socket_pushes_an_arrival_and_a_drop_without_reloading(
    settings: Settings, database: Database
) -> None:
    fast = settings.model_copy(
        update={
            "heartbeat_timeout_s": 1.0,
            "presence_sweep_interval_s": 0.2,
            "live_push_interval_s": 0.2,
        }
    )
    app = create_app(fast, database=database)
    location = hall(database)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug="test-summit").one()
    grant(database, organiser, summit, Role.ORGANISER)

    with TestClient(app, base_url="http://127.0.0.1") as client:
        log_in(client, "org@example.org")
        cookie = f"summitcast_session={client.cookies['summitcast_session']}"
        with client.websocket_connect(
            "/backstage/s/test-summit/live?country=ke",
            headers={"origin": "http://testserver", "cookie": cookie},
        ) as ws:
            first = ws.receive_json()
            client.post("/live/heartbeat", content=json.dumps({"token": signed_token(location)}))
            # Pushes come at most every 0.2 s; read until the arrival, then until the drop.
            arrived = ws.receive_json()
            while not arrived["arrivals"]:
                arrived = ws.receive_json()
            dropped = ws.receive_json()
            while not dropped["drops"]:
                dropped = ws.receive_json()

    assert (first["arrivals"], first["drops"]) == ([], [])
    assert [(a["label"], a["country"]) for a in arrived["arrivals"]] == [("Hall", "KE")]
    assert arrived["total"] == 1
    assert [(d["label"], d["country"]) for d in dropped["drops"]] == [("Hall", "KE")]
    assert dropped["total"] == 0


def test_organiser_stream_filtered_by_another_country_lists_nothing(
    client: TestClient, database: Database
) -> None:
    location = hall(database)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug="test-summit").one()
    grant(database, organiser, summit, Role.ORGANISER)
    client.post("/live/heartbeat", content=json.dumps({"token": signed_token(location)}))
    live: LiveService = client.app.state.live  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(live.flush_transitions)  # stored now, not at the next tick
    log_in(client, "org@example.org")
    cookie = f"summitcast_session={client.cookies['summitcast_session']}"

    lists = {}
    for code in ("ke", "FR"):
        with client.websocket_connect(
            f"/backstage/s/test-summit/live?country={code}",
            headers={"origin": "http://testserver", "cookie": cookie},
        ) as ws:
            lists[code] = ws.receive_json()["arrivals"]

    assert [a["label"] for a in lists["ke"]] == ["Hall"]
    assert lists["FR"] == []
