"""Backstage lists through the app: query strings, counts, page links, bad input, bulk approval."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.accounts import Role
from summitcast.services import audit_trail, locations, programme
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import AuditEvent, Location, Summit
from tests.conftest import TEST_LINKS, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

LOCATIONS = "/backstage/s/test-summit/locations"


def _organiser(client: TestClient, database: Database) -> str:
    user = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug="test-summit").one()
    grant(database, user, summit, Role.ORGANISER)
    return log_in(client, "org@example.org")


def _bulk(
    database: Database, count: int, *, country: str, label: str, approve: bool = False
) -> None:
    inputs = (
        LocationInput(label=f"{label} {n:04d}", country=country, city="") for n in range(count)
    )
    with database.session() as db:
        locations.register_locations_bulk(
            db, programme.get_summit(db, "test-summit"), inputs, links=TEST_LINKS, approve=approve
        )


def _labels(page: str) -> list[str]:
    return re.findall(
        r'<tr id="location-\d+" data-status="\w+">\s*<td>.*?</td>\s*<td>([^<]*)</td>', page, re.S
    )


def _showing(page: str) -> str:
    match = re.search(r'<p class="list-showing"[^>]*>\s*(.*?)\s*</p>', page, re.S)
    assert match, "no list-showing line"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def _query(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href.replace("&amp;", "&")).query)


def test_locations_page_counts_and_pages_three_thousand(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _bulk(database, 1000, country="KE", label="Kenya hall")
    _bulk(database, 2000, country="FR", label="Salle", approve=True)
    _organiser(client, database)

    first = client.get(LOCATIONS)
    second = client.get(LOCATIONS, params={"page": "2"})
    last = client.get(LOCATIONS, params={"page": "60"})
    beyond = client.get(LOCATIONS, params={"page": "61"})

    assert first.status_code == 200
    assert 'id="location-counts" data-count="3000"' in first.text
    assert 'data-status-count="pending" data-count="1000"' in first.text
    assert _showing(first.text) == "showing 1–50 of 3,000"
    assert len(_labels(first.text)) == 50
    assert _labels(first.text)[0] == "Salle 1999"  # newest first
    assert 'href="?page=2" rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    assert _showing(second.text) == "showing 51–100 of 3,000"
    assert 'href="?page=1" rel="prev"' in second.text
    assert 'href="?page=3" rel="next"' in second.text
    assert _showing(last.text) == "showing 2,951–3,000 of 3,000"
    assert _labels(last.text)[-1] == "Kenya hall 0000"
    assert 'rel="next"' not in last.text
    assert _showing(beyond.text) == _showing(last.text)  # past the end: the last page
    assert 'data-action="approve-all" data-count="1000"' in first.text
    assert len(first.text) < 200_000  # one page, not 3,000 rows


def test_locations_page_filters_sorts_and_keeps_them_in_page_links(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _bulk(database, 130, country="KE", label="Hall")
    _bulk(database, 20, country="KE", label="Church")
    _bulk(database, 40, country="FR", label="Hall")
    _organiser(client, database)
    query = {"status": "pending", "country": "ke", "q": " hall ", "sort": "name", "per": "100"}

    first = client.get(LOCATIONS, params=query)
    second = client.get(LOCATIONS, params={**query, "page": "2"})

    assert first.status_code == 200
    assert _showing(first.text) == "130 match this filter · showing 1–100 of 130"
    assert _labels(first.text)[:2] == ["Hall 0000", "Hall 0001"]
    assert _labels(second.text) == [f"Hall {n:04d}" for n in range(100, 130)]
    [next_href] = re.findall(r'href="([^"]*)" rel="next"', first.text)
    assert _query(next_href) == {
        "status": ["pending"],
        "country": ["KE"],
        "q": ["hall"],
        "sort": ["name"],
        "per": ["100"],
        "page": ["2"],
    }
    assert 'value="KE"' in first.text
    assert 'name="q" type="search" value="hall"' in first.text
    assert '<option value="name" selected>' in first.text
    assert '<option value="100" selected>' in first.text
    assert 'data-action="approve-all" data-count="130"' in first.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "lost"}, "is not a status"),
        ({"country": "Kenya"}, "is not a country code"),
        ({"country": "QQ"}, "is not a country code"),
        ({"sort": "random"}, "is not a way to sort this list"),
        ({"page": "0"}, "Page must be a whole number"),
        ({"page": "two"}, "Page must be a whole number"),
        ({"page": "99999999999999999999"}, "Page must be a whole number"),
        ({"per": "7"}, "Rows per page must be one of 50, 100, 200"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_locations_page_bad_query_is_422_with_a_message(
    client: TestClient, database: Database, query: dict[str, str], message: str
) -> None:
    make_summit(database)
    _organiser(client, database)

    response = client.get(LOCATIONS, params=query)

    assert response.status_code == 422
    assert message in response.text


def test_approve_all_matching_approves_a_thousand_in_one_request(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _bulk(database, 1000, country="KE", label="Hall")
    _bulk(database, 10, country="FR", label="Salle")
    token = _organiser(client, database)
    with database.session() as db:
        revoked = db.query(Location).filter_by(country="KE").order_by(Location.id).first()
        assert revoked is not None
        locations.revoke_location(db, revoked)
    page = client.get(LOCATIONS, params={"status": "pending", "country": "KE"})
    up_to = re.search(r'name="up_to" value="(\d+)"', page.text)
    back = re.search(r'name="back" value="([^"]*)"', page.text)
    assert up_to
    assert back

    started = time.perf_counter()
    response = client.post(
        f"{LOCATIONS}/approve-all",
        data={
            "status": "pending",
            "country": "KE",
            "q": "",
            "up_to": up_to.group(1),
            "confirm": "yes",
            "back": back.group(1).replace("&amp;", "&"),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    took = time.perf_counter() - started
    after = client.get(response.headers["location"])

    assert response.status_code == 303
    assert response.headers["location"] == f"{LOCATIONS}?status=pending&country=KE"
    assert 'id="list-notice">Approved 999 locations.' in after.text
    assert _showing(after.text) == "0 match this filter · none to show"
    with database.session() as db:
        statuses = locations.status_counts(db, programme.get_summit(db, "test-summit"))
        approvals = db.query(AuditEvent).filter_by(action="location.approved").count()
    assert statuses == {"pending": 10, "approved": 999, "revoked": 1}
    assert approvals == 999
    assert took < 10.0  # measured ~0.3 s in-process on this machine; room for a busy runner


def test_approve_all_needs_the_confirmation_and_a_pending_list(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _bulk(database, 3, country="KE", label="Hall")
    token = _organiser(client, database)
    form = {"up_to": "1000", "csrf_token": token}

    unconfirmed = client.post(f"{LOCATIONS}/approve-all", data=form)
    approved_list = client.post(
        f"{LOCATIONS}/approve-all", data={**form, "confirm": "yes", "status": "approved"}
    )
    no_bound = client.post(f"{LOCATIONS}/approve-all", data={"confirm": "yes", "csrf_token": token})
    no_csrf = client.post(f"{LOCATIONS}/approve-all", data={"confirm": "yes", "up_to": "1000"})

    assert unconfirmed.status_code == 422
    assert "Tick the box" in unconfirmed.text
    assert approved_list.status_code == 422
    assert "Only pending locations can be approved" in approved_list.text
    assert no_bound.status_code == 422
    assert no_csrf.status_code == 403
    with database.session() as db:
        assert db.query(Location).filter_by(status="pending").count() == 3


def test_row_actions_return_to_the_same_page_of_the_list(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _bulk(database, 120, country="KE", label="Hall")
    token = _organiser(client, database)
    with database.session() as db:
        one, two = [loc.id for loc in db.query(Location).order_by(Location.id).limit(2)]
    back = "country=KE&sort=oldest&page=3"

    approved = client.post(
        f"{LOCATIONS}/approve",
        data={"ids": [str(one), str(two)], "back": back, "csrf_token": token},
        follow_redirects=False,
    )
    revoked = client.post(
        f"{LOCATIONS}/revoke",
        data={"id": str(one), "back": back, "csrf_token": token},
        follow_redirects=False,
    )
    again = client.post(
        f"{LOCATIONS}/reapprove",
        data={"id": str(one), "back": "page=2", "csrf_token": token},
        follow_redirects=False,
    )
    outside = client.post(
        f"{LOCATIONS}/approve",
        data={
            "ids": [],
            "back": "//evil.example/x?page=2&next=http://evil.example",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    bad_back = client.post(
        f"{LOCATIONS}/approve",
        data={"back": "status=lost", "csrf_token": token},
        follow_redirects=False,
    )

    assert approved.headers["location"] == f"{LOCATIONS}?country=KE&sort=oldest&page=3"
    assert revoked.headers["location"] == f"{LOCATIONS}?country=KE&sort=oldest&page=3"
    assert again.headers["location"] == f"{LOCATIONS}?page=2"
    assert outside.headers["location"] == LOCATIONS
    assert bad_back.headers["location"] == LOCATIONS
    with database.session() as db:
        assert [loc.status for loc in db.query(Location).order_by(Location.id).limit(3)] == [
            "approved",
            "approved",
            "pending",
        ]
    listed = client.get(f"{LOCATIONS}?country=KE&sort=oldest")
    assert 'class="reapprove"' not in listed.text
    assert "No location was selected: tick the ones to approve first." in listed.text


def test_speakers_page_searches_sorts_and_pages(client: TestClient, database: Database) -> None:
    make_summit(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        for n in range(75):
            programme.add_speaker(db, summit, programme.SpeakerInput(name=f"Speaker {n:02d}"))
        programme.add_speaker(
            db, summit, programme.SpeakerInput(name="Ana", role_line="Minister of Health")
        )
    _organiser(client, database)
    page = "/backstage/s/test-summit/speakers"

    first = client.get(page)
    health = client.get(page, params={"q": "health"})
    newest = client.get(page, params={"sort": "newest", "page": "2"})
    bad = client.get(page, params={"sort": "height"})

    assert _showing(first.text) == "76 speakers · showing 1–50 of 76"
    assert 'href="?page=2" rel="next"' in first.text
    assert 'id="name"' in first.text  # the form to add one stays
    assert _showing(health.text) == "76 speakers · 1 matches · showing 1–1 of 1"
    assert "Minister of Health" in health.text
    assert _showing(newest.text) == "76 speakers · showing 51–76 of 76"
    assert 'href="?sort=newest&amp;page=1" rel="prev"' in newest.text
    assert bad.status_code == 422
    assert "is not a way to sort this list" in bad.text


def test_uploads_page_lists_by_state_and_refuses_unknown_states(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _organiser(client, database)
    page = "/backstage/s/test-summit/uploads"

    empty = client.get(page)
    ready = client.get(page, params={"state": "ready", "q": "talk"})
    bad = client.get(page, params={"state": "lost"})
    nav = client.get("/backstage/s/test-summit/speakers")

    assert empty.status_code == 200
    assert "No uploads yet." in empty.text
    assert _showing(empty.text) == "none to show"
    assert ready.status_code == 200
    assert "No upload matches." in ready.text
    assert bad.status_code == 422
    assert "is not a state of an upload" in bad.text
    assert 'href="/backstage/s/test-summit/uploads"' in nav.text


def test_audit_page_orders_oldest_first_and_counts(client: TestClient, database: Database) -> None:
    make_summit(database)
    _organiser(client, database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        audit_trail.record_events(
            db, summit, None, "location.approved", [f"location:{n}" for n in range(1, 131)]
        )
    page = "/backstage/s/test-summit/audit"

    oldest = client.get(page, params={"sort": "oldest", "per": "100", "page": "2"})
    bad = client.get(page, params={"per": "1000"})

    assert _showing(oldest.text) == "130 events, oldest first · showing 101–130 of 130"
    assert "location:101<" in oldest.text
    assert 'href="?sort=oldest&amp;per=100&amp;page=1" rel="prev"' in oldest.text
    assert bad.status_code == 422
    assert "Rows per page" in bad.text


@pytest.mark.parametrize("path", ["locations", "speakers", "uploads"])
def test_a_nul_in_the_search_text_is_a_plain_400(
    client: TestClient, database: Database, path: str
) -> None:
    make_summit(database)
    _organiser(client, database)

    # Refused before routing (web/edge.py): no control character is ever in a query.
    response = client.get(f"/backstage/s/test-summit/{path}", params={"q": "ha\x00ll"})

    assert response.status_code == 400
    assert "control character" in response.text


def test_a_submitted_filter_form_lands_on_the_tidy_address(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _organiser(client, database)

    form = client.get(
        LOCATIONS,
        params={"status": "pending", "country": "ke", "q": "", "sort": "newest", "per": "50"},
        follow_redirects=False,
    )
    tidy = client.get(form.headers["location"], follow_redirects=False)
    speakers = client.get(
        "/backstage/s/test-summit/speakers",
        params={"q": "  ana  ", "sort": "name"},
        follow_redirects=False,
    )
    first_page = client.get(LOCATIONS, params={"page": "1"}, follow_redirects=False)

    assert form.status_code == 303
    assert form.headers["location"] == f"{LOCATIONS}?status=pending&country=KE"
    assert tidy.status_code == 200
    assert speakers.headers["location"] == "/backstage/s/test-summit/speakers?q=ana"
    assert first_page.headers["location"] == LOCATIONS


def test_ids_beyond_any_row_are_refused_or_ignored_never_a_500(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    token = _organiser(client, database)
    huge = str(10**30)

    approve = client.post(
        f"{LOCATIONS}/approve", data={"ids": huge, "csrf_token": token}, follow_redirects=False
    )
    revoke = client.post(f"{LOCATIONS}/revoke", data={"id": huge, "csrf_token": token})
    approve_all = client.post(
        f"{LOCATIONS}/approve-all", data={"up_to": huge, "confirm": "yes", "csrf_token": token}
    )

    assert approve.status_code == 303
    assert revoke.status_code == 422
    assert approve_all.status_code == 422
