"""Issue 6's privacy guarantees, one test each, through the real app and the published log.

A summit where one country has only a few locations, at-risk hosts are 'hidden' in a
country of their own and others chose 'country': after heartbeats, publishing and
every public download, nothing public shows them below their level.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import JSON, String, Text, select

from summitcast.audit.verify import verify_log
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services import attendance
from summitcast.services.attendance import AttendanceRecorder
from summitcast.storage.database import Database
from summitcast.storage.tables import Base, Location, Summit
from tests.conftest import TEST_LINKS, csrf_of, grant, log_in, make_user
from tests.services.test_attendance import T0, Clock, count_beats, make_world
from tests.test_no_ip_addresses import CLIENT_V4, addresses_in

pytestmark = pytest.mark.integration

# 6 public FR with a city, 5 'country' DE, 5 'hidden' IR (a country nobody else is in),
# 2 public LU (fewer than k=5).
HOSTS = (
    [("FR", "public")] * 6
    + [("DE", "country")] * 5
    + [("IR", "hidden")] * 5
    + [("LU", "public")] * 2
)
PUBLIC_PATHS = (
    "/s/test-summit/attendance",
    "/s/test-summit/attendance/log.jsonl",
    "/s/test-summit/attendance/public-key.txt",
    "/s/test-summit/attendance/countries.csv",
    "/s/test-summit/attendance/sessions.csv",
    "/s/test-summit/attendance/timeline.csv",
)


@dataclass
class Published:
    """The published summit, seen from outside."""

    client: TestClient
    bodies: dict[str, str]
    world_locations: list[Location]


@pytest.fixture
def published(app, database: Database, settings: Settings) -> Iterator[Published]:  # type: ignore[no-untyped-def]
    """Locations counted in 4 buckets each, published by an organiser over HTTP."""
    world = make_world(database, settings, HOSTS)
    with database.session() as db:
        # Every host leaves a city behind: only 'public' ones may ever show it.
        for location in db.scalars(select(Location)):
            location.city = "Tehran" if location.country == "IR" else "Cityname"
    clock = Clock(T0)
    recorder = AttendanceRecorder(settings.attendance_bucket_s, clock)
    for location in world.locations:
        for bucket in range(4):
            count_beats(recorder, clock, location, [T0 + 300 * bucket + s for s in (0, 10, 20)])
    recorder.flush_now(database)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
    grant(database, organiser, summit, Role.ORGANISER)  # type: ignore[arg-type]
    base = "http://summit.test"
    with TestClient(app, base_url=base, client=(CLIENT_V4, 51234)) as client:
        token = log_in(client, "org@example.org")
        response = client.post(
            "/backstage/s/test-summit/attendance/publish",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 303
        client.post("/logout", data={"csrf_token": csrf_of(client)})
        bodies = {path: client.get(path).text for path in PUBLIC_PATHS}
        yield Published(client, bodies, world.locations)


def test_public_outputs_suppress_countries_under_k_and_say_so(published: Published) -> None:
    countries = published.bodies["/s/test-summit/attendance/countries.csv"]

    # FR 6 and DE 5 reach k=5; LU (2) and every hidden host are in "other".
    assert countries == "country,locations\nFR,6\nDE,5\nother,7\n"
    assert "fewer than 5 counted locations" in published.bodies["/s/test-summit/attendance"]
    assert 'data-country="LU"' not in published.bodies["/s/test-summit/attendance"]


def test_hidden_and_country_levels_never_appear_below_their_level(published: Published) -> None:
    for path, body in published.bodies.items():
        assert "IR" not in re.findall(r"\b[A-Z]{2}\b", body), path
        assert "Iran" not in body, path
        assert "Tehran" not in body, path
        assert "Cityname" not in body, path  # no public output goes below the country


def test_public_log_carries_only_pseudonyms_bucket_times_and_allowed_countries(
    published: Published,
) -> None:
    lines = [
        json.loads(line)
        for line in published.bodies["/s/test-summit/attendance/log.jsonl"].splitlines()
    ]
    buckets = [line for line in lines if line["type"] == "bucket"]
    entries = [entry for bucket in buckets for entry in bucket["entries"]]
    text = published.bodies["/s/test-summit/attendance/log.jsonl"]

    assert {tuple(sorted(entry)) for entry in entries} == {("country", "pseudonym")}
    assert {tuple(sorted(bucket)) for bucket in buckets} == {("bucket_start", "entries", "type")}
    assert sorted({entry["country"] for entry in entries}) == ["DE", "FR", "ZZ"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", entry["pseudonym"]) for entry in entries)
    for location in published.world_locations:
        assert location.public_id not in text
        assert location.label not in text
        assert location.contact not in text


def test_no_ip_address_in_database_logs_or_exports(
    published: Published, database: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log_in(published.client, "org@example.org")
    exports = [
        published.client.get(f"/backstage/s/test-summit/report/download?file={name}").text
        for name in ("timeline.csv", "sessions.csv", "countries.csv", "countries-exact.csv")
    ]
    found: list[str] = []
    with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in conn.execute(select(*columns)) if columns else []:
                for value in row:
                    found += addresses_in(value if isinstance(value, str) else json.dumps(value))
    for body in [*published.bodies.values(), *exports]:
        found += addresses_in(body)
    for path in settings.attendance_dir.rglob("*.jsonl"):
        found += addresses_in(path.read_text(encoding="utf-8"))
    found += addresses_in(
        "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    )

    assert found == []


def test_host_deletes_personal_data_without_breaking_published_counts(
    published: Published, database: Database, settings: Settings
) -> None:
    host = published.world_locations[0]
    before = published.client.get("/s/test-summit/attendance/countries.csv").text
    token = csrf_of(published.client)

    refused = published.client.post(
        f"/l/{host.public_id}/forget", data={"csrf_token": token, "secret": "wrong"}
    )
    no_csrf = published.client.post(
        f"/l/{host.public_id}/forget", data={"secret": TEST_LINKS.open(host)}
    )
    done = published.client.post(
        f"/l/{host.public_id}/forget", data={"csrf_token": token, "secret": TEST_LINKS.open(host)}
    )

    assert refused.status_code == 403
    assert no_csrf.status_code == 403
    assert done.status_code == 200
    with database.session() as db:
        forgotten = db.get(Location, host.id)
        assert forgotten is not None
        assert (forgotten.label, forgotten.contact) == ("", "")
        summit = db.get(Summit, forgotten.summit_id)
        assert summit is not None
        publication = attendance.latest_publication(db, summit)
        assert publication is not None
        path = attendance.published_log_path(settings, summit, publication)
    assert published.client.get("/s/test-summit/attendance/countries.csv").text == before
    assert verify_log(path).problems == []
    assert published.client.get(f"/l/{host.public_id}/counted").status_code == 200


def test_pseudonym_is_shown_only_with_the_location_secret(published: Published) -> None:
    host = published.world_locations[0]
    token = csrf_of(published.client)

    form = published.client.get(f"/l/{host.public_id}/counted")
    wrong = published.client.post(
        f"/l/{host.public_id}/counted", data={"csrf_token": token, "secret": "guess"}
    )
    right = published.client.post(
        f"/l/{host.public_id}/counted", data={"csrf_token": token, "secret": TEST_LINKS.open(host)}
    )

    assert 'id="pseudonym"' not in form.text
    assert wrong.status_code == 403
    assert 'id="pseudonym"' not in wrong.text
    assert right.status_code == 200
    assert right.headers["cache-control"] == "no-store"
    assert re.search(r'id="pseudonym">[0-9a-f]{32}<', right.text)
    assert "Counted: your location is in 4 buckets" in right.text
    assert datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%d %H:%M UTC") in right.text
