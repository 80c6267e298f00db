"""Location pages: public registration (validation, honeypot, flood), review, dashboard, CSV."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from summitcast.storage.database import Database
from summitcast.storage.tables import AuditEvent, Location, Summit
from tests.conftest import TEST_LINKS, csrf_of, grant, log_in, make_summit, make_user
from tests.presence.conftest import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.integration

FORM = {
    "label": "Town hall",
    "country": "KE",
    "city": "Nairobi",
    "kind": "hall",
    "expected_audience": "120",
    "contact": "",
    "privacy_level": "",
}


def _register(client: TestClient, slug: str = "test-summit", **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client)
    return client.post(
        f"/s/{slug}/register", data={**FORM, **fields, "csrf_token": token}, follow_redirects=False
    )


def _rows(database: Database) -> list[Location]:
    with database.session() as db:
        return list(db.query(Location).order_by(Location.id))


def _organiser(client: TestClient, database: Database, slug: str = "test-summit") -> str:
    user = make_user(database, f"org-{slug}@example.org")
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug=slug).one()
    grant(database, user, summit, Role.ORGANISER)
    return log_in(client, f"org-{slug}@example.org")


def test_register_page_offers_countries_and_privacy_levels(
    client: TestClient, database: Database
) -> None:
    make_summit(database)

    page = client.get("/s/test-summit/register")

    assert page.status_code == 200
    assert '<option value="KE">Kenya</option>' in page.text
    assert 'name="website"' in page.text  # the honeypot
    assert page.text.count('name="privacy_level"') == 4


def test_register_redirects_after_post_and_shows_the_secret_link_once(
    client: TestClient, database: Database
) -> None:
    make_summit(database)

    response = _register(client)
    [row] = _rows(database)
    first = client.get(response.headers["location"])
    refreshed = client.get(response.headers["location"])

    assert response.status_code == 303
    assert response.headers["location"] == f"/s/test-summit/registered/{row.public_id}"
    assert TEST_LINKS.open(row) not in response.headers["location"]
    assert TEST_LINKS.open(row) not in response.headers.get("set-cookie", "")
    assert (row.label, row.country, row.city, row.status) == (
        "Town hall",
        "KE",
        "Nairobi",
        "pending",
    )
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    assert "Pending approval" in first.text
    assert f'href="/l/{row.public_id}#k={TEST_LINKS.open(row)}"' in first.text
    assert refreshed.status_code == 200
    assert "Pending approval" in refreshed.text
    assert TEST_LINKS.open(row) not in refreshed.text
    assert 'id="link-shown-once"' in refreshed.text
    assert len(_rows(database)) == 1  # the refresh registered nothing


def test_registered_page_shows_no_link_to_another_browser(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    location = _register(client).headers["location"]
    [row] = _rows(database)
    client.cookies.clear()  # another browser: the same address, none of the session

    theirs = client.get(location)

    assert theirs.status_code == 200
    assert TEST_LINKS.open(row) not in theirs.text
    assert client.get("/s/test-summit/registered/no-such-location").status_code == 404


def test_registered_page_hides_a_link_reissued_since(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    location = _register(client).headers["location"]
    [row] = _rows(database)
    with database.session() as db:
        locations.reissue_link(db, db.get(Location, row.id), None, TEST_LINKS)  # type: ignore[arg-type]
    [reissued] = _rows(database)

    page = client.get(location)

    assert TEST_LINKS.open(reissued) not in page.text
    assert 'id="link-shown-once"' in page.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"label": " "}, "Name of the place is required."),
        ({"label": "x" * 201}, "Name of the place may have at most 200 characters."),
        ({"country": ""}, "Country is required: choose one from the list."),
        ({"city": "x" * 201}, "City or town may have at most 200 characters."),
        ({"kind": "castle"}, "&#39;castle&#39; is not a kind of place: choose one from the list."),
        (
            {"expected_audience": "many"},
            "Expected audience must be a whole number of people from 1 to 1,000,000.",
        ),
        (
            {"expected_audience": "0"},
            "Expected audience must be a whole number of people from 1 to 1,000,000.",
        ),
        ({"contact": "x" * 301}, "Contact for the organisers may have at most 300 characters."),
        ({"privacy_level": "secret"}, "is not a choice for what the public may see"),
        ({"label": "Hall\x00"}, "Name of the place holds a character that cannot be kept"),
        ({"city": "Nai\x1brobi"}, "City or town holds a character that cannot be kept"),
    ],
)
def test_register_errors_name_the_field_as_the_form_labels_it(
    client: TestClient, database: Database, fields: dict[str, str], message: str
) -> None:
    make_summit(database)

    response = _register(client, **fields)

    assert response.status_code == 422
    assert message in response.text
    [field] = fields
    assert f'data-field="{field}"' in response.text
    assert _rows(database) == []


def test_register_with_auto_approve_is_approved_at_once(
    client: TestClient, database: Database
) -> None:
    summit = make_summit(database)
    with database.session() as db:
        locations.set_auto_approve(db, db.get(Summit, summit.id), True)  # type: ignore[arg-type]

    response = _register(client)

    assert response.status_code == 303
    assert "Approved: the screen counts" in client.get(response.headers["location"]).text
    assert [r.status for r in _rows(database)] == ["approved"]


def test_register_unknown_country_rerenders_form_with_error(
    client: TestClient, database: Database
) -> None:
    make_summit(database)

    response = _register(client, country="QQ", label="Kept label")

    assert response.status_code == 422
    assert "is not a country" in response.text
    assert 'value="Kept label"' in response.text
    assert _rows(database) == []


def test_register_unknown_city_keeps_country_only(client: TestClient, database: Database) -> None:
    make_summit(database)

    response = _register(client, city="Atlantis", privacy_level="public")

    assert response.status_code == 303
    assert "We did not find “Atlantis” in Kenya" in client.get(response.headers["location"]).text
    [row] = _rows(database)
    assert (row.city, row.lat, row.lon) == ("", None, None)


def test_register_honeypot_filled_is_refused(client: TestClient, database: Database) -> None:
    make_summit(database)

    response = _register(client, website="http://spam.example")

    assert response.status_code == 422
    assert _rows(database) == []


def test_register_without_csrf_token_is_refused(client: TestClient, database: Database) -> None:
    make_summit(database)
    client.get("/s/test-summit/register")

    response = client.post("/s/test-summit/register", data=FORM)

    assert response.status_code == 403
    assert _rows(database) == []


def test_register_flood_from_one_client_is_refused(client: TestClient, database: Database) -> None:
    make_summit(database)
    limit = client.app.state.settings.registrations_per_hour  # type: ignore[attr-defined]

    statuses = [_register(client, label=f"Hall {n}").status_code for n in range(limit + 3)]

    assert statuses == [303] * limit + [429] * 3
    assert len(_rows(database)) == limit


def test_register_flood_html_page_carries_retry_after(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    limit = client.app.state.settings.registrations_per_hour  # type: ignore[attr-defined]
    for n in range(limit):
        _register(client, label=f"Hall {n}")

    refused = _register(client, label="One too many")

    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    wait = re.search(r"try again in (\d+) seconds", refused.text)
    assert wait is not None
    assert refused.headers["retry-after"] == wait.group(1)
    assert 0 < int(wait.group(1)) <= 3600


def test_location_screen_has_player_and_presence_client(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _register(client)
    [row] = _rows(database)

    page = client.get(f"/l/{row.public_id}")

    assert page.status_code == 200
    assert 'id="player"' in page.text
    assert 'data-ws-url="/live/ws?push=on_air"' in page.text
    assert 'data-heartbeat-url="/live/heartbeat"' in page.text
    assert TEST_LINKS.open(row) not in page.text
    assert client.get("/l/no-such-location").status_code == 404
    # A summit without sessions: nothing to play or announce (web/on_air.py).
    assert client.get(f"/l/{row.public_id}/now.json").json() == {
        "type": "on_air",
        "active": False,
        "ready": False,
        "session_id": None,
        "session": None,
        "master": None,
        "status": "idle",
        "live": False,
        "on_air": None,
        "next": None,
        "starts_at": None,
    }


def test_review_list_filters_and_approves_one(client: TestClient, database: Database) -> None:
    make_summit(database)
    _register(client, label="Nairobi hall")
    _register(client, label="Paris hall", country="FR", city="Paris")
    token = _organiser(client, database)

    kenya = client.get("/backstage/s/test-summit/locations?status=pending&country=ke")
    nairobi = _rows(database)[0]
    approved = client.post(
        "/backstage/s/test-summit/locations/approve",
        data={"ids": str(nairobi.id), "csrf_token": token},
        follow_redirects=False,
    )

    assert kenya.status_code == 200
    assert "Nairobi hall" in kenya.text
    assert "Paris hall" not in kenya.text
    assert approved.status_code == 303
    assert [r.status for r in _rows(database)] == ["approved", "pending"]


def test_review_bulk_approve_and_revoke(client: TestClient, database: Database) -> None:
    make_summit(database)
    for n in range(3):
        _register(client, label=f"Hall {n}")
    token = _organiser(client, database)
    ids = [r.id for r in _rows(database)]

    client.post(
        "/backstage/s/test-summit/locations/approve",
        data={"ids": [str(i) for i in ids[:2]], "csrf_token": token},
    )
    client.post(
        "/backstage/s/test-summit/locations/revoke", data={"id": ids[0], "csrf_token": token}
    )

    assert [r.status for r in _rows(database)] == ["revoked", "approved", "pending"]


def test_review_location_of_other_summit_is_not_found(
    client: TestClient, database: Database
) -> None:
    make_summit(database, "test-summit")
    make_summit(database, "other")
    _register(client, slug="other")
    theirs = _rows(database)[0]
    token = _organiser(client, database, "test-summit")

    revoke = client.post(
        "/backstage/s/test-summit/locations/revoke", data={"id": theirs.id, "csrf_token": token}
    )
    approve = client.post(
        "/backstage/s/test-summit/locations/approve",
        data={"ids": str(theirs.id), "csrf_token": token},
        follow_redirects=False,
    )
    other_list = client.get("/backstage/s/other/locations")

    assert revoke.status_code == 404
    assert approve.status_code == 303
    assert other_list.status_code == 403
    assert [r.status for r in _rows(database)] == ["pending"]


def test_review_auto_approve_toggle(client: TestClient, database: Database) -> None:
    summit = make_summit(database)
    token = _organiser(client, database)

    client.post(
        "/backstage/s/test-summit/locations/settings",
        data={"auto_approve": "on", "csrf_token": token},
    )
    with database.session() as db:
        on = locations.auto_approves(db, db.get(Summit, summit.id))  # type: ignore[arg-type]
    client.post("/backstage/s/test-summit/locations/settings", data={"csrf_token": token})
    with database.session() as db:
        off = locations.auto_approves(db, db.get(Summit, summit.id))  # type: ignore[arg-type]

    assert (on, off) == (True, False)


def test_producer_may_not_review_locations(client: TestClient, database: Database) -> None:
    summit = make_summit(database)
    producer = make_user(database, "producer@example.org")
    grant(database, producer, summit, Role.PRODUCER)
    log_in(client, "producer@example.org")

    assert client.get("/backstage/s/test-summit/locations").status_code == 403
    assert client.get("/backstage/s/test-summit/dashboard").status_code == 403
    assert client.get("/backstage/s/test-summit/locations.csv").status_code == 403


def test_locations_csv_export(client: TestClient, database: Database) -> None:
    make_summit(database)
    _register(client, contact="+254 700 000000")
    _organiser(client, database)
    [row] = _rows(database)

    response = client.get("/backstage/s/test-summit/locations.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="test-summit-locations.csv"'
    )
    lines = response.text.splitlines()
    assert lines[0] == (
        "id,label,country,city,kind,expected_audience,privacy_level,status,contact,"
        "created_at,approved_at,last_online_at,last_offline_at"
    )
    assert lines[1].startswith(
        f"{row.id},Town hall,KE,Nairobi,hall,120,public,pending,'+254 700 000000,"
    )
    assert TEST_LINKS.open(row) not in response.text


def test_dashboard_shows_figures_and_table(client: TestClient, database: Database) -> None:
    make_summit(database)
    _register(client)
    token = _organiser(client, database)
    client.post(
        "/backstage/s/test-summit/locations/approve",
        data={"ids": str(_rows(database)[0].id), "csrf_token": token},
    )

    page = client.get("/backstage/s/test-summit/dashboard")

    assert page.status_code == 200
    assert 'id="online-now" data-figure="total">0<' in page.text
    assert re.search(r'<tr data-country="KE">.*?<td class="online">0</td><td>1</td>', page.text)
    assert 'data-url="/backstage/s/test-summit/live"' in page.text


def _beat(client: TestClient, location: Location, secret: str, seq: int):  # type: ignore[no-untyped-def]
    heartbeat = sign_heartbeat(
        secret.encode(), location.public_id, "epoch-" + secret[:6], seq, int(time.time())
    )
    return client.post(
        "/live/heartbeat", content=json.dumps({"token": encode_heartbeat(heartbeat)})
    )


def _online(client: TestClient) -> int:
    total: int = client.get("/live/s/test-summit/figures.json").json()["total"]
    return total


def test_reissue_link_shows_new_secret_and_old_one_stops_counting_at_once(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    _register(client, label="Lost link hall")
    token = _organiser(client, database)
    old = _rows(database)[0]
    client.post(
        "/backstage/s/test-summit/locations/approve", data={"ids": str(old.id), "csrf_token": token}
    )
    counted_before = _beat(client, old, TEST_LINKS.open(old), 0).status_code
    online_before = _online(client)

    page = client.post(
        "/backstage/s/test-summit/locations/reissue",
        data={"id": str(old.id), "csrf_token": token},
        follow_redirects=False,
    )
    online_after = _online(client)
    new = _rows(database)[0]
    old_beat = _beat(client, old, TEST_LINKS.open(old), 1)
    new_beat = _beat(client, new, TEST_LINKS.open(new), 0)
    with database.session() as db:
        events = [(e.action, e.subject) for e in db.query(AuditEvent)]

    assert (counted_before, online_before) == (200, 1)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert f'href="/l/{old.public_id}#k={TEST_LINKS.open(new)}"' in page.text
    assert TEST_LINKS.open(old) not in page.text
    assert TEST_LINKS.open(new) != TEST_LINKS.open(old)
    assert new.public_id == old.public_id
    assert online_after == 0  # the old link stopped counting at once, not after the timeout
    assert (old_beat.status_code, old_beat.json()["reason"]) == (403, "bad_signature")
    assert new_beat.status_code == 200
    assert events == [
        ("location.approved", f"location:{old.id}"),
        ("location.link_reissued", f"location:{old.id}"),
    ]


def test_reissue_link_needs_csrf_the_role_and_a_location_of_this_summit(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    make_summit(database, "other-summit")
    _register(client, label="Ours")
    _register(client, slug="other-summit", label="Theirs")
    ours, theirs = _rows(database)
    token = _organiser(client, database)

    no_csrf = client.post("/backstage/s/test-summit/locations/reissue", data={"id": str(ours.id)})
    other_summits = client.post(
        "/backstage/s/test-summit/locations/reissue",
        data={"id": str(theirs.id), "csrf_token": token},
    )
    not_theirs = client.post(
        "/backstage/s/other-summit/locations/reissue",
        data={"id": str(ours.id), "csrf_token": token},
    )
    bad_id = client.post(
        "/backstage/s/test-summit/locations/reissue",
        data={"id": "first", "csrf_token": token},
        headers={"Accept": "application/json"},
    )

    assert no_csrf.status_code == 403
    assert other_summits.status_code == 404
    assert not_theirs.status_code == 403
    assert bad_id.status_code == 422
    assert "id" in bad_id.text
    assert [r.sealed_secret for r in _rows(database)] == [ours.sealed_secret, theirs.sealed_secret]


@pytest.mark.redis
def test_register_flood_is_refused_by_two_workers_sharing_redis(
    settings: Settings, database: Database
) -> None:
    redis_or_skip()
    prefix = f"summitcast-test-{uuid.uuid4().hex}"
    shared = settings.model_copy(
        update={"redis_url": REDIS_URL, "redis_prefix": prefix, "registrations_per_hour": 3}
    )
    make_summit(database)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with (
            TestClient(create_app(shared, database=database), base_url="http://127.0.0.1") as one,
            TestClient(create_app(shared, database=database), base_url="http://127.0.0.1") as two,
        ):
            # The same client alternates between the two workers (as a load balancer would).
            answers = [_register((one, two)[n % 2], label=f"Hall {n}") for n in range(6)]
        keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:ratelimit:*")]
        ttls = [client.pttl(k) for k in keys]
    finally:
        stale = list(client.scan_iter(match=f"{prefix}:*"))
        if stale:
            client.delete(*stale)
        client.close()

    assert [a.status_code for a in answers] == [303, 303, 303, 429, 429, 429]
    wait = re.search(r"Too many attempts; try again in (\d+) seconds", answers[3].text)
    assert wait is not None
    assert 3500 < int(wait.group(1)) <= 3601
    assert len(_rows(database)) == 3
    assert len(keys) == 1  # one client, one hashed key (the test client's address is not in it)
    assert keys[0].startswith(f"{prefix}:ratelimit:registration:")
    assert "testclient" not in keys[0]
    assert "127.0.0.1" not in keys[0]
    assert 0 < ttls[0] <= 3600 * 1000
