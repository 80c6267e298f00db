"""A host reaches the counted page from the location screen; the secret comes from the fragment."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from summitcast.config import Settings
from summitcast.storage.database import Database
from tests.conftest import TEST_LINKS
from tests.services.test_attendance import make_world

pytestmark = pytest.mark.integration


def test_screen_links_to_counted_page_carrying_the_secret(
    client: TestClient, database: Database, settings: Settings
) -> None:
    location = make_world(database, settings, [("FR", "public")]).locations[0]

    screen = client.get(f"/l/{location.public_id}")
    form = client.get(f"/l/{location.public_id}/counted")

    assert f'data-keep-secret href="/l/{location.public_id}/counted"' in screen.text
    assert '<script src="/static/js/location-secret.js"></script>' in screen.text
    assert form.headers["cache-control"] == "no-store"
    assert form.text.count("data-location-secret") == 2  # the check and the deletion
    assert TEST_LINKS.open(location) not in screen.text + form.text


def test_counted_page_before_publication_says_so(
    client: TestClient, database: Database, settings: Settings
) -> None:
    location = make_world(database, settings, [("FR", "public")]).locations[0]
    token = client.get(f"/l/{location.public_id}/counted").text.split('name="csrf_token" value="')[
        1
    ]
    token = token.split('"')[0]

    page = client.post(
        f"/l/{location.public_id}/counted",
        data={"csrf_token": token, "secret": TEST_LINKS.open(location)},
    )
    unknown = client.get("/l/no-such-location/counted")

    assert '<p id="verdict">Nothing is published yet.</p>' in page.text
    assert unknown.status_code == 404
