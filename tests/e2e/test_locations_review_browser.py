"""The organiser's locations list in a real Chromium against a real uvicorn server.

3,000 registered locations (1,000 of them pending, in Kenya): page through them with the
page links and the back button, filter to the pending ones, approve all 1,000 in one
request, then see the counts change, with no console error on the way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from summitcast.services import locations
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import AuditEvent
from tests.conftest import PASSWORD
from tests.e2e.app_server import AppServer, app_server, seed_world_summit
from tests.e2e.browser import chromium_page, require_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ORGANISER = "organiser@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app on a free loopback port (SQLite in a temporary folder, no encoders)."""
    require_chromium()
    env = {"SUMMITCAST_BROADCAST_WORKERS": "false"}
    with app_server(tmp_path_factory.mktemp("locations-review"), env) as running:
        yield running


def _seed(server: AppServer) -> None:
    """A summit, its organiser, 2,000 approved locations in France and 1,000 pending in Kenya."""
    database = Database(server.database_url)
    try:
        with database.session() as db:
            summit = seed_world_summit(db, ORGANISER)
            france = (
                LocationInput(label=f"Salle {n:04d}", country="FR", city="Paris")
                for n in range(2000)
            )
            kenya = (
                LocationInput(label=f"Kenya hall {n:04d}", country="KE", city="Nairobi")
                for n in range(1000)
            )
            # These screens never beat: their secrets may be sealed under any key.
            links = LinkSecrets("never-used-" + "x" * 32)
            locations.register_locations_bulk(db, summit, france, links=links, approve=True)
            locations.register_locations_bulk(db, summit, kenya, links=links, approve=False)
    finally:
        database.dispose()


def _text(page, selector: str) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(page.locator(selector).text_content()).split())


def test_organiser_pages_through_3000_locations_and_approves_1000_pending(
    server: AppServer,
) -> None:
    _seed(server)
    base = server.base_url
    console: list[str] = []
    with chromium_page((1280, 720), console=console) as page:
        page.set_default_timeout(15_000)
        page.goto(f"{base}/login")
        page.fill("input[name=email]", ORGANISER)
        page.fill("input[name=password]", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{base}/backstage")

        # The whole list: counted, one page of 50, page links instead of 3,000 rows.
        page.goto(f"{base}/backstage/s/world/locations")
        expect(page.locator("#location-counts")).to_have_attribute("data-count", "3000")
        assert _text(page, "#list-showing") == "showing 1–50 of 3,000"
        assert page.locator("#locations tbody tr").count() == 50
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 6000, f"the page is {height} px tall"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "backstage-locations-1280x720.png"))

        # Next, next, then the last page from the page links; back returns to page 3.
        page.click("nav.pager a[rel=next]")
        expect(page.locator("#list-showing")).to_contain_text("showing 51–100 of 3,000")
        page.click("nav.pager a[rel=next]")
        expect(page.locator("#list-showing")).to_contain_text("showing 101–150 of 3,000")
        page.click("nav.pager a[href$='page=60']")
        expect(page.locator("#list-showing")).to_contain_text("showing 2,951–3,000 of 3,000")
        assert page.locator("nav.pager a[rel=next]").count() == 0
        page.go_back()
        expect(page.locator("#list-showing")).to_contain_text("showing 101–150 of 3,000")

        # Filter to Kenya's pending ones through the form: the filter is in the address.
        page.select_option("#f-status", "pending")
        page.fill("#f-country", "ke")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**/locations?status=pending&country=KE")
        expect(page.locator("#list-showing")).to_contain_text(
            "1,000 match this filter · showing 1–50 of 1,000"
        )
        approve_all = page.locator('button[data-action="approve-all"]')
        expect(approve_all).to_have_attribute("data-count", "1000")

        # The checkbox confirms; the browser refuses to send the form without it.
        approve_all.click()
        assert page.url.endswith("/locations?status=pending&country=KE")
        page.check("#approve-all-confirm")
        started = time.monotonic()
        approve_all.click()
        expect(page.locator("#list-notice")).to_have_text("Approved 1,000 locations.")
        took = time.monotonic() - started
        assert page.url.endswith("/locations?status=pending&country=KE")
        expect(page.locator("#list-showing")).to_contain_text("none to show")
        expect(page.locator('[data-status-count="pending"]')).to_have_attribute("data-count", "0")
        expect(page.locator('[data-status-count="approved"]')).to_have_attribute(
            "data-count", "3000"
        )
        page.screenshot(path=str(SCREENSHOTS / "backstage-locations-approved-1280x720.png"))

        # The approved ones page like the rest.
        page.goto(f"{base}/backstage/s/world/locations?country=KE&sort=name&page=20")
        expect(page.locator("#list-showing")).to_contain_text("showing 951–1,000 of 1,000")
        assert page.locator("#locations tbody tr[data-status=approved]").count() == 50

    database = Database(server.database_url)
    try:
        with database.session() as db:
            approvals = db.query(AuditEvent).filter_by(action="location.approved").count()
    finally:
        database.dispose()
    assert approvals == 1000
    assert took < 10.0, f"approving 1,000 took {took:.1f} s"
    assert [line for line in console if line.startswith(("error", "pageerror"))] == []
