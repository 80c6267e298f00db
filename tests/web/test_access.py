"""Every organiser route and API endpoint refuses the anonymous and the wrong role.

The test walks the app's route table, so a route added later is covered without editing it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from summitcast.app import ROUTERS
from summitcast.domain.accounts import Role
from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from tests.conftest import csrf_of, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

# Backstage pages a producer of the summit may open (read-only views of the run of show).
PRODUCER_MAY = {
    ("GET", "/backstage/s/{slug}"),
    ("GET", "/backstage/s/{slug}/sessions/{session_id}"),
    ("GET", "/backstage/s/{slug}/sessions/{session_id}/control"),
    ("GET", "/backstage/s/{slug}/sessions/{session_id}/control/health.json"),
    # The green room: live speakers' previews (its buttons are under PRODUCER_RUNS).
    ("GET", "/backstage/s/{slug}/sessions/{session_id}/control/greenroom"),
    ("GET", "/backstage/s/{slug}/sessions/{session_id}/control/greenroom.json"),
    ("GET", "/backstage/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/preview.jpg"),
}
# The control room's buttons: producers run the broadcast (303 back to the room, or 409
# when the button does not apply in the current state, e.g. "hold" before "start").
PRODUCER_RUNS = "/backstage/s/{slug}/sessions/{session_id}/control/"


# Speaker-portal routes are authenticated by the signed link token in their path, not by
# a session: tests/web/test_speaker_access.py checks that each refuses a missing, forged,
# expired or revoked token.
PORTAL_PREFIX = "/speak/{token}"


def _protected(path: str, method: str) -> bool:
    return path.startswith("/backstage") or (path.startswith("/api/") and method != "GET")


def portal_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the token-authenticated speaker portal."""
    found: list[tuple[str, str]] = []
    for route in [r for router in ROUTERS for r in router.routes]:
        if isinstance(route, APIRoute) and route.path.startswith(PORTAL_PREFIX):
            found += [(method, route.path) for method in sorted(route.methods)]
    return sorted(set(found))


def _routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found: list[tuple[str, str]] = []
    for route in [r for router in ROUTERS for r in router.routes] + list(app.routes):
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                if _protected(route.path, method):
                    found.append((method, route.path))
    assert found, "no protected route found: the walk itself is broken"
    return sorted(set(found))


def _target(database: Database) -> dict[str, str]:
    make_summit(database, "target")
    with database.session() as db:
        summit = programme.get_summit(db, "target")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="I"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="P"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=1)
        return {
            "slug": "target",
            "session_id": str(session.id),
            "item_id": str(item.id),
            "speaker_id": str(speaker.id),
            "invitation_id": str(invitation.id),
            "upload_id": "no-such-upload",
        }


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _refused(response) -> bool:  # type: ignore[no-untyped-def]
    if response.status_code in (401, 403):
        return True
    return response.status_code == 303 and response.headers["location"].startswith("/login")


def test_route_table_has_protected_routes(app) -> None:  # type: ignore[no-untyped-def]
    routes = _routes(app)
    assert ("POST", "/api/summits") in routes
    assert ("POST", "/backstage/s/{slug}/import") in routes
    assert len(routes) >= 30


def test_token_routes_are_all_speaker_portal_routes(app) -> None:  # type: ignore[no-untyped-def]
    token_routes = {
        (method, route.path)
        for route in [r for router in ROUTERS for r in router.routes] + list(app.routes)
        if isinstance(route, APIRoute) and "{token}" in route.path
        for method in route.methods
    }
    portal = set(portal_routes())

    assert token_routes == portal
    assert ("PATCH", "/speak/{token}/uploads/{upload_id}") in portal
    assert not any(_protected(path, method) for method, path in portal)


def test_anonymous_is_refused_everywhere(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    values = _target(database)
    token = csrf_of(client)
    failures = []
    for method, path in _routes(app):
        url = _fill(path, values)
        for headers in ({}, {"x-csrf-token": token}):
            response = client.request(method, url, headers=headers, follow_redirects=False)
            if not _refused(response):
                failures.append((method, path, bool(headers), response.status_code))
    assert failures == []


def test_organiser_of_other_summit_is_refused(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    values = _target(database)
    outsider = make_user(database, "outsider@example.org")
    grant(database, outsider, make_summit(database, "elsewhere"), Role.ORGANISER)
    token = log_in(client, "outsider@example.org")
    failures = []
    for method, path in _routes(app):
        if "{slug}" not in path:
            continue
        response = client.request(
            method, _fill(path, values), headers={"x-csrf-token": token}, follow_redirects=False
        )
        if response.status_code != 403:
            failures.append((method, path, response.status_code))
    assert failures == []


def test_producer_may_view_but_not_edit(client: TestClient, app, database: Database) -> None:  # type: ignore[no-untyped-def]
    values = _target(database)
    producer = make_user(database, "producer@example.org")
    with database.session() as db:
        summit = programme.get_summit(db, "target")
    grant(database, producer, summit, Role.PRODUCER)
    token = log_in(client, "producer@example.org")
    failures = []
    for method, path in _routes(app):
        if "{slug}" not in path:
            continue
        response = client.request(
            method, _fill(path, values), headers={"x-csrf-token": token}, follow_redirects=False
        )
        expected = 200 if (method, path) in PRODUCER_MAY else 403
        if method == "POST" and path.startswith(PRODUCER_RUNS):
            expected = response.status_code if response.status_code in (303, 409) else 303
        if response.status_code != expected:
            failures.append((method, path, response.status_code))
    assert failures == []


def test_unsafe_request_without_csrf_token_is_refused_even_when_logged_in(
    client: TestClient, database: Database
) -> None:
    organiser = make_user(database, "org@example.org")
    grant(database, organiser, make_summit(database, "target"), Role.ORGANISER)
    log_in(client, "org@example.org")

    response = client.post(
        "/api/summits/target/speakers", json={"name": "Forged"}, follow_redirects=False
    )

    assert response.status_code == 403
    assert "security token" in response.json()["detail"]
