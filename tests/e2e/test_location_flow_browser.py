"""The location flow in a real Chromium against a real uvicorn server.

register → organiser approves → the location link is opened → the public counter and the
dashboard show it online within 2 s → the page is closed → offline after the timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from summitcast.storage.database import Database
from summitcast.storage.tables import PresenceSample
from tests.conftest import PASSWORD
from tests.e2e.app_server import AppServer, app_server, seed_world_summit
from tests.e2e.browser import chromium_page, require_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

INTERVAL_S = 1.0
TIMEOUT_S = 3.0
ORGANISER = "organiser@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app on a free loopback port, short heartbeat interval and timeout."""
    require_chromium()
    env = {
        "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(INTERVAL_S),
        "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(TIMEOUT_S),
        "SUMMITCAST_PRESENCE_SAMPLE_INTERVAL_S": "1",
        "SUMMITCAST_PRESENCE_SWEEP_INTERVAL_S": "0.2",
    }
    with app_server(tmp_path_factory.mktemp("location-flow"), env) as running:
        yield running


def _seed(server: AppServer) -> None:
    """A summit and its organiser, written straight into the server's database."""
    database = Database(server.database_url)
    try:
        with database.session() as db:
            seed_world_summit(db, ORGANISER)
    finally:
        database.dispose()


def _figure(page, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(page.locator(f"#{element_id}").text_content()).strip()


def test_location_flow_register_approve_online_offline(server: AppServer) -> None:
    _seed(server)
    base = server.base_url
    console: list[str] = []
    with chromium_page(console=console) as host:
        browser = host.context.browser
        assert browser is not None
        organiser = browser.new_context().new_page()
        public = browser.new_context().new_page()
        for page in (host, organiser, public):
            page.set_default_timeout(10_000)

        # A host registers a location.
        host.goto(f"{base}/s/world/register")
        host.fill("#label", "Nairobi community hall")
        host.select_option("#country", "KE")
        host.fill("#city", "nairobi")
        host.select_option("#kind", "hall")
        host.fill("#expected_audience", "80")
        host.click("#register-form button[type=submit]")
        host.wait_for_selector("#host-link")
        assert "Pending approval" in _figure(host, "location-status")
        link = host.locator("#host-link").get_attribute("href")
        assert link is not None
        assert "#k=" in link

        # The organiser approves it.
        organiser.goto(f"{base}/login")
        organiser.fill("input[name=email]", ORGANISER)
        organiser.fill("input[name=password]", PASSWORD)
        organiser.click("form[action='/login'] button[type=submit]")
        organiser.goto(f"{base}/backstage/s/world/locations?status=pending")
        organiser.click("#locations .approve-one")
        organiser.wait_for_url("**/locations?status=pending")
        organiser.goto(f"{base}/backstage/s/world/locations?status=approved")
        assert "Nairobi community hall" in str(organiser.locator("#locations").text_content())

        # The public page and the dashboard are open and live.
        public.goto(f"{base}/s/world")
        organiser.goto(f"{base}/backstage/s/world/dashboard")
        for page in (public, organiser):
            page.wait_for_selector("#live-state[data-state=open]")
            expect(page.locator("#online-now")).to_have_text("0")

        # The host opens the location link: within 2 s both pages show it online.
        host.goto(f"{base}{link}")
        host.wait_for_selector("#presence-status[data-state=online]")
        online_at = time.monotonic()
        for page in (public, organiser):
            expect(page.locator("#online-now")).to_have_text("1", timeout=2_000)
        assert time.monotonic() - online_at < 2.0 + 0.5  # both waits together, with slack
        assert _figure(public, "peak") == "1"
        # The arrival reaches the dashboard's list without a reload (stored in batches
        # every second, then pushed at most once a second).
        expect(organiser.locator("#arrivals li").first).to_contain_text(
            "Nairobi community hall · KE · ", timeout=3_000
        )
        # The flag is an image named for screen readers (no emoji: boxes without an emoji font).
        expect(organiser.locator("#arrivals li img.sc-flag").first).to_have_attribute(
            "alt", "Kenya"
        )

        # The host closes the screen: offline after the timeout, never sooner.
        host.context.close()
        closed_at = time.monotonic()
        expect(public.locator("#online-now")).to_have_text("0", timeout=15_000)
        offline_after = time.monotonic() - closed_at
        expect(organiser.locator("#online-now")).to_have_text("0", timeout=5_000)
        # The last heartbeat came at most one interval before the close.
        assert TIMEOUT_S - INTERVAL_S - 0.1 <= offline_after <= TIMEOUT_S + 5.0
        # Drops are written to the database in batches, every second, then pushed: no reload.
        expect(organiser.locator("#drops li").first).to_contain_text(
            "Nairobi community hall · KE · since ", timeout=3_000
        )
        assert [line for line in console if "pageerror" in line] == []

    # The SSE fallback carries the same public figures.
    with httpx.stream("GET", f"{base}/live/s/world/public", timeout=5) as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                figures = json.loads(line.removeprefix("data: "))
                break
    assert (figures["type"], figures["total"], figures["peak"]) == ("presence", 0, 1)
    # The background task sampled the count every second for reports.
    database = Database(server.database_url)
    try:
        with database.session() as db:
            samples = db.query(PresenceSample).order_by(PresenceSample.sampled_at)
            totals = [row.online_total for row in samples]
    finally:
        database.dispose()
    assert 1 in totals
    assert totals[-1] == 0
