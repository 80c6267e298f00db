"""The backstage audit trail page: organisers only, newest first, paged, filtered, no secrets."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.accounts import Role
from summitcast.services import audit_trail
from summitcast.storage.database import Database
from summitcast.storage.tables import AuditEvent, Location, Summit
from tests.conftest import TEST_LINKS, csrf_of, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

PAGE = "/backstage/s/test-summit/audit"


def _register(client: TestClient, label: str) -> None:
    response = client.post(
        "/s/test-summit/register",
        data={"label": label, "country": "KE", "kind": "hall", "csrf_token": csrf_of(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def _member(client: TestClient, database: Database, role: Role, slug: str = "test-summit") -> str:
    email = f"{role.value}-{slug}@example.org"
    user = make_user(database, email)
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug=slug).one()
    grant(database, user, summit, role)
    return log_in(client, email)


def _locations(database: Database) -> list[Location]:
    with database.session() as db:
        return list(db.query(Location).order_by(Location.id))


def _events(database: Database) -> list[tuple[str, str]]:
    with database.session() as db:
        return [(e.action, e.subject) for e in db.query(AuditEvent).order_by(AuditEvent.id)]


def _rows(page: str) -> list[str]:
    """The kind of each event row of the page, top to bottom."""
    return re.findall(r'<tr data-kind="([^"]+)">', page)


def test_location_actions_on_the_review_page_reach_the_trail(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _register(client, "Nairobi hall")
    _register(client, "Mombasa hall")
    token = _member(client, database, Role.ORGANISER)
    one, two = (loc.id for loc in _locations(database))
    backstage = "/backstage/s/test-summit/locations"

    client.post(f"{backstage}/approve", data={"ids": [one, two], "csrf_token": token})
    client.post(f"{backstage}/revoke", data={"id": one, "csrf_token": token})
    reissued = client.post(f"{backstage}/reissue", data={"id": two, "csrf_token": token})
    client.post(f"{backstage}/settings", data={"auto_approve": "on", "csrf_token": token})
    page = client.get(PAGE)

    summit_id = _locations(database)[0].summit_id
    assert _events(database) == [
        ("location.approved", f"location:{one}"),
        ("location.approved", f"location:{two}"),
        ("location.revoked", f"location:{one}"),
        ("location.link_reissued", f"location:{two}"),
        ("locations.auto_approve_on", f"summit:{summit_id}"),
    ]
    assert page.status_code == 200
    assert _rows(page.text) == [
        "locations.auto_approve_on",
        "location.link_reissued",
        "location.revoked",
        "location.approved",
        "location.approved",
    ]
    assert "Mombasa hall" in page.text
    # The review list is paged: the link finds the location by its name.
    assert f'href="/backstage/s/test-summit/locations?q=Mombasa%20hall#location-{two}"' in page.text
    assert "organiser-test-summit" in page.text  # the author's display name
    # No secret and no address: neither the new link's secret nor the client's address.
    new_secret = TEST_LINKS.open(_locations(database)[1])
    assert new_secret in reissued.text
    assert new_secret not in page.text
    assert "127.0.0.1" not in page.text
    assert "testclient" not in page.text


def test_audit_page_filters_by_kind(client: TestClient, database: Database) -> None:
    make_summit(database)
    _register(client, "Nairobi hall")
    token = _member(client, database, Role.ORGANISER)
    (hall,) = (loc.id for loc in _locations(database))
    backstage = "/backstage/s/test-summit/locations"
    client.post(f"{backstage}/approve", data={"ids": hall, "csrf_token": token})
    client.post(f"{backstage}/revoke", data={"id": hall, "csrf_token": token})

    revoked = client.get(PAGE, params={"kind": "location.revoked"})

    assert revoked.status_code == 200
    assert _rows(revoked.text) == ["location.revoked"]
    assert '<option value="location.revoked" selected>' in revoked.text


def test_audit_page_pages_newest_first(client: TestClient, database: Database) -> None:
    summit = make_summit(database)
    _member(client, database, Role.ORGANISER)
    with database.session() as db:
        row = db.get(Summit, summit.id)
        for n in range(audit_trail.PAGE_SIZE + 3):
            audit_trail.record_event(db, row, None, "location.approved", f"location:{1000 + n}")  # type: ignore[arg-type]

    first = client.get(PAGE)
    second = client.get(PAGE, params={"page": 2})

    assert len(_rows(first.text)) == audit_trail.PAGE_SIZE
    assert f"location:{1000 + audit_trail.PAGE_SIZE + 2}" in first.text  # the newest
    assert "location:1000<" not in first.text
    assert 'href="?page=2" rel="next"' in first.text
    assert len(_rows(second.text)) == 3
    assert "location:1000<" in second.text
    assert 'href="?page=1" rel="prev"' in second.text
    assert "page 2 of 2" in second.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "location.teleported"}, "is not a kind of event"),
        ({"kind": "x" * 65}, "kind"),
        ({"page": "0"}, "Page must be a whole number"),
        ({"page": "two"}, "Page must be a whole number"),
        ({"page": "99999999999999999999"}, "Page must be a whole number"),
        ({"sort": "sideways"}, "is not a way to sort this list"),
    ],
)
def test_audit_page_bad_input_is_422_with_a_message(
    client: TestClient, database: Database, query: dict[str, str], message: str
) -> None:
    make_summit(database)
    _member(client, database, Role.ORGANISER)

    response = client.get(PAGE, params=query)

    assert response.status_code == 422
    assert message in response.text


def test_audit_page_refuses_producers_and_organisers_of_other_summits(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    make_summit(database, "other")

    anonymous = client.get(PAGE, follow_redirects=False)
    _member(client, database, Role.PRODUCER)
    producer = client.get(PAGE)
    producer_summit = client.get("/backstage/s/test-summit")
    client.post("/logout", data={"csrf_token": csrf_of(client)})
    _member(client, database, Role.ORGANISER, slug="other")
    elsewhere = client.get(PAGE)
    own = client.get("/backstage/s/other/audit")
    own_summit = client.get("/backstage/s/other")

    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    assert producer.status_code == 403
    assert "view_audit_trail" in producer.text
    assert "/audit" not in producer_summit.text
    assert elsewhere.status_code == 403
    assert own.status_code == 200
    assert 'href="/backstage/s/other/audit"' in own_summit.text
