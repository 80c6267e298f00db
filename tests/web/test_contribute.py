"""Going live from the browser over HTTP: the page, and every way an offer is refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.programme import ItemKind
from summitcast.services import greenroom, programme, speakers
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from tests.conftest import make_summit, make_user

pytestmark = pytest.mark.integration
ORIGIN = "http://127.0.0.1"  # the test client's base URL
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=sendonly",
    ]
)


def _speaker(
    database: Database, secret: bytes, kind: ItemKind = ItemKind.SPEECH
) -> tuple[str, int, int]:
    """A speaker with a portal link; returns (token, session id, speaker id)."""
    make_summit(database, "golive")
    with database.session() as db:
        summit = programme.get_summit(db, "golive")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="Live keynote", kind=kind))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana Lima"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=5)
        return speakers.invitation_token(invitation, secret), session.id, speaker.id


def _open_feed(database: Database, session_id: int, speaker_id: int) -> None:
    producer = make_user(database, "producer@example.org", is_admin=True)
    with database.session() as db:
        summit = programme.get_summit(db, "golive")
        actor = Actor(producer.id, is_admin=True)
        greenroom.open_feed(db, actor, summit, session_id, speaker_id, max_feeds=4)


@pytest.fixture
def speaker(app, database: Database) -> tuple[str, int, int]:  # type: ignore[no-untyped-def]
    return _speaker(database, app.state.settings.secret_key.get_secret_value().encode())


def _csrf(client: TestClient, token: str) -> str:
    page = client.get(f"/speak/{token}/live")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _offer(client: TestClient, token: str, **overrides: object) -> tuple[int, str]:
    headers = {
        "Origin": ORIGIN,
        "Sec-Fetch-Site": "same-origin",
        "X-CSRF-Token": _csrf(client, token),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    headers.update({k.replace("_", "-"): str(v) for k, v in overrides.items() if k != "body"})
    headers = {k: v for k, v in headers.items() if v != "None"}
    body = overrides.get("body", json.dumps({"type": "offer", "sdp": OFFER}))
    response = client.post(f"/speak/{token}/live/sessions", content=str(body), headers=headers)
    detail = response.json().get("detail", "") if response.content else ""
    return response.status_code, str(detail)


def test_page_asks_to_wait_until_the_producer_opens_the_green_room(
    client: TestClient, speaker: tuple[str, int, int]
) -> None:
    token, _session, _speaker_id = speaker

    page = client.get(f"/speak/{token}/live")

    assert page.status_code == 200
    assert "has not opened your green room yet" in page.text
    assert "data-sessions-url" not in page.text
    # The page asks whether the green room has opened (and reloads when it has).
    assert f'data-status-url="/speak/{token}/live/sessions/none"' in page.text
    assert page.headers["cache-control"] == "no-store"
    # The site refuses the microphone everywhere else; this page needs it.
    assert "microphone=(self)" in page.headers["permissions-policy"]
    assert "camera=(self)" in page.headers["permissions-policy"]


def test_page_offers_to_go_live_once_the_feed_is_open_and_the_portal_links_to_it(
    client: TestClient, database: Database, speaker: tuple[str, int, int]
) -> None:
    token, session_id, speaker_id = speaker
    _open_feed(database, session_id, speaker_id)

    page = client.get(f"/speak/{token}/live").text
    portal = client.get(f"/speak/{token}").text

    assert f'data-sessions-url="/speak/{token}/live/sessions"' in page
    assert 'data-ice-servers="[]"' in page  # no third-party STUN by default
    assert '<script src="/static/build/golive.js" defer></script>' in page
    assert f'href="/speak/{token}/live"' in portal


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"Origin": None}, 403, "only possible from your speaker page"),
        ({"Origin": "http://evil.example"}, 403, "only possible from your speaker page"),
        ({"Sec_Fetch_Site": "cross-site"}, 403, "only possible from your speaker page"),
        ({"X_CSRF_Token": "forged"}, 403, "security token"),
        ({"Content_Type": "text/plain"}, 415, "application/json"),
        ({"body": "x" * (48 * 1024)}, 413, "larger than 40 KiB"),
        ({"body": "{not json"}, 422, "not valid JSON"),
        ({"body": "[1, 2]"}, 422, "must be a JSON object"),
        ({"body": '{"type": "answer", "sdp": "v=0"}'}, 422, "must be an offer"),
        (
            {"body": '{"type": "offer", "sdp": "v=0\\r\\nm=audio 9 RTP 0\\r\\na=sendonly"}'},
            422,
            "no picture",
        ),
    ],
)
def test_offer_is_refused_with_a_clear_status(
    client: TestClient,
    database: Database,
    speaker: tuple[str, int, int],
    overrides: dict[str, object],
    status: int,
    message: str,
) -> None:
    token, session_id, speaker_id = speaker
    _open_feed(database, session_id, speaker_id)

    code, detail = _offer(client, token, **overrides)
    assert code == status
    assert message in detail


def test_offer_before_the_feed_is_open_is_a_conflict_and_elsewhere_unavailable(
    client: TestClient, database: Database, speaker: tuple[str, int, int]
) -> None:
    token, session_id, speaker_id = speaker

    code, detail = _offer(client, token)
    assert code == 409
    assert "has not opened your green room" in detail

    _open_feed(database, session_id, speaker_id)
    # These app tests run no broadcast workers: the listeners live on another node.
    code, detail = _offer(client, token)
    assert code == 503
    assert "does not run the green room" in detail


def test_status_and_stop_of_an_unknown_session_are_harmless(
    client: TestClient, database: Database, speaker: tuple[str, int, int]
) -> None:
    token, session_id, speaker_id = speaker
    url = f"/speak/{token}/live/sessions/nope"

    assert client.get(url).json() == {
        "feed_open": False,
        "on_air": False,
        "state": "ended",
        "reason": "The producer closed your green room.",
    }
    _open_feed(database, session_id, speaker_id)
    assert client.get(url).json()["state"] == "ended"
    stop = client.delete(url, headers={"Origin": ORIGIN, "X-CSRF-Token": _csrf(client, token)})
    assert stop.status_code == 204
    assert client.delete(url).status_code == 403  # not from the page: refused


def test_portal_of_a_live_slot_links_to_going_live_before_the_feed_is_open(
    client: TestClient,
    app,
    database: Database,  # type: ignore[no-untyped-def]
) -> None:
    secret = app.state.settings.secret_key.get_secret_value().encode()
    token, _session, _speaker_id = _speaker(database, secret, ItemKind.LIVE)

    portal = client.get(f"/speak/{token}").text

    assert "Your slot is live." in portal
    assert f'href="/speak/{token}/live"' in portal


def test_portal_of_a_recorded_slot_without_a_feed_does_not_offer_going_live(
    client: TestClient, speaker: tuple[str, int, int]
) -> None:
    token, _session, _speaker_id = speaker

    assert f'href="/speak/{token}/live"' not in client.get(f"/speak/{token}").text
