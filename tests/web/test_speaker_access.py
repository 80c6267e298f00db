"""Every speaker-portal route refuses a missing, forged, expired or revoked link token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import SpeakerInvitation
from tests.conftest import make_summit
from tests.web.test_access import portal_routes

pytestmark = pytest.mark.integration


def _invitation(database: Database, secret: bytes) -> tuple[int, str]:
    make_summit(database, "links")
    with database.session() as db:
        summit = programme.get_summit(db, "links")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="Talk"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Speaker"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=5)
        return invitation.id, speakers.invitation_token(invitation, secret)


def _url(path: str, token: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: token if m.group(1) == "token" else "x", path)


def _statuses(client: TestClient, token: str) -> set[tuple[str, str, int]]:
    found = set()
    for method, path in portal_routes():
        response = client.request(
            method, _url(path, token), json={"size": 10}, follow_redirects=False
        )
        found.add((method, path, response.status_code))
    return found


def _secret(app) -> bytes:  # type: ignore[no-untyped-def]
    return app.state.settings.secret_key.get_secret_value().encode()


def test_portal_routes_exist(app) -> None:  # type: ignore[no-untyped-def]
    assert len(portal_routes()) >= 7


def test_forged_tokens_are_refused_everywhere(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    _id, token = _invitation(database, _secret(app))
    public_id, expires, _signature = token.split(".")
    forged = [
        "nonsense",
        f"{public_id}.{expires}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        f"{public_id}.{int(expires) + 86400}.{_signature}",  # a later expiry, same signature
        "",
    ]
    for bad in forged:
        codes = {status for _m, _p, status in _statuses(client, bad)}
        assert codes <= {404, 405}, (bad, codes)


def test_expired_token_is_refused_everywhere(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    invitation_id, _token = _invitation(database, _secret(app))
    with database.session() as db:
        invitation = db.get(SpeakerInvitation, invitation_id)
        invitation.expires_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        expired = speakers.invitation_token(invitation, _secret(app))

    found = _statuses(client, expired)

    assert {status for _m, _p, status in found} == {403}
    page = client.get(f"/speak/{expired}")
    assert "This link has expired. Ask the organisers to send you a new one." in page.text


def test_revoked_token_is_refused_everywhere(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    invitation_id, token = _invitation(database, _secret(app))
    assert client.get(f"/speak/{token}").status_code == 200
    with database.session() as db:
        speakers.revoke_invitation(db, db.get(SpeakerInvitation, invitation_id))

    found = _statuses(client, token)

    assert {status for _m, _p, status in found} == {403}
    assert "withdrawn" in client.get(f"/speak/{token}").text


def test_link_of_other_summit_cannot_reach_its_uploads(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    _id, token = _invitation(database, _secret(app))
    created = client.post(f"/speak/{token}/uploads", json={"size": 10, "kind": "programme"})
    upload_id = created.json()["id"]
    with database.session() as db:
        summit = programme.create_summit(
            db,
            programme.SummitInput(
                slug="other",
                title="Other",
                time_zone="UTC",
                start_date=datetime(2027, 7, 17).date(),
                end_date=datetime(2027, 7, 18).date(),
            ),
        )
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="T"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Q"))
        other = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=5)
        other_token = speakers.invitation_token(other, _secret(app))

    response = client.get(f"/speak/{other_token}/uploads/{upload_id}")

    assert response.status_code == 404
