"""The organiser's day: log in → import a schedule → approve 1,000 locations → page → report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import chromium_page
from tests.journeys.conftest import ORGANISER, SLUG, Journey, Server, demo_server, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCHEDULE = Path(__file__).parents[1] / "interchange" / "fixtures" / "pretalx-democon-day1.json"
NEW_LOCATIONS = 1000
PAGES_WALKED = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo; no encoder (the organiser's day here is all backstage pages)."""
    with demo_server(
        tmp_path_factory.mktemp("organiser"), SUMMITCAST_BROADCAST_WORKERS="false"
    ) as running:
        yield running


def _first_talk_title() -> str:
    rooms = json.loads(SCHEDULE.read_text())["schedule"]["conference"]["days"][0]["rooms"]
    return str(next(talk["title"] for talks in rooms.values() for talk in talks))


def _count(page, selector: str) -> int:  # type: ignore[no-untyped-def]
    value = page.locator(selector).first.get_attribute("data-count")
    assert value is not None, selector
    return int(value)


def test_organiser_imports_approves_a_thousand_pages_through_them_and_opens_the_report(
    server: Server, tmp_path: Path
) -> None:
    # A thousand hosts register (the installed bulk command; they wait for approval).
    secrets = tmp_path / "locations.jsonl"
    made = server.cli(
        "locations", "bulk-create", "--summit", SLUG, "--count", str(NEW_LOCATIONS),
        "--out", str(secrets), "--no-approve",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert len(secrets.read_text().splitlines()) == NEW_LOCATIONS

    journey = Journey("organiser", server.base_url)
    with chromium_page((1280, 800)) as page:
        journey.watch(page, "organiser")
        page.set_default_timeout(20_000)
        log_in(page, server, ORGANISER)
        journey.shot(page, "logged-in")

        # Import a pretalx schedule through the import page.
        page.goto(server.url(f"/backstage/s/{SLUG}"))
        page.click("nav.subnav a:text-is('Import schedule')")
        page.set_input_files("#file", SCHEDULE)
        page.click("form[enctype='multipart/form-data'] button[type=submit]")
        result = page.locator(".card.success")
        result.wait_for()
        imported = r"Imported (\d+) days, (\d+) sessions, (\d+) items"
        figures = re.search(imported, result.inner_text())
        assert figures, result.inner_text()
        assert min(int(n) for n in figures.groups()) >= 1, result.inner_text()
        journey.shot(page, "schedule-imported")
        # The imported talks are on the public programme.
        talk = _first_talk_title()
        page.click("nav.subnav a:text-is('Public page')")
        assert page.get_by_text(talk, exact=False).count() >= 1, talk

        # The pending thousand, approved in one go.
        page.goto(server.url(f"/backstage/s/{SLUG}"))
        page.click("nav.subnav a:text-is('Locations')")
        approved_before = _count(page, "[data-status-count=approved]")
        assert _count(page, "[data-status-count=pending]") == NEW_LOCATIONS
        page.click("[data-status-count=pending]")
        page.wait_for_url("**status=pending**")
        assert _count(page, "#list-showing") == NEW_LOCATIONS
        journey.shot(page, "pending-thousand")
        button = page.locator("[data-action=approve-all]")
        assert int(str(button.get_attribute("data-count"))) == NEW_LOCATIONS
        page.check("#approve-all-confirm")
        button.click()
        page.wait_for_load_state()
        page.locator("#list-notice").wait_for()
        journey.shot(page, "approved-thousand")
        assert _count(page, "[data-status-count=pending]") == 0
        assert _count(page, "[data-status-count=approved]") == approved_before + NEW_LOCATIONS
        assert page.locator("[data-action=approve-all]").count() == 0

        # Page through the approved ones.
        page.click("[data-status-count=approved]")
        page.wait_for_url("**status=approved**")
        pages = int(str(page.locator("[data-pager]").get_attribute("data-pages")))
        assert pages > PAGES_WALKED
        seen: set[str] = set()
        for number in range(1, PAGES_WALKED + 1):
            pager = page.locator("[data-pager]")
            assert pager.get_attribute("data-page") == str(number)
            rows = page.locator("#locations tbody tr").evaluate_all("rs => rs.map(r => r.id)")
            assert rows, f"page {number} is empty"
            assert seen.isdisjoint(rows), f"page {number} repeats rows"
            seen.update(rows)
            assert page.locator("#locations tbody tr[data-status=approved]").count() == len(rows)
            if number < PAGES_WALKED:
                page.click("a[rel=next]")
                page.wait_for_url(f"**page={number + 1}**")
        journey.shot(page, "approved-page-3")
        total = _count(page, "#list-showing")
        assert total == approved_before + NEW_LOCATIONS

        # The attendance report.
        page.click("nav.subnav a:text-is('Attendance report')")
        page.locator("#headline").wait_for()
        page.locator("#map img, #map svg").first.wait_for()
        journey.shot(page, "report", full_page=True)
    journey.assert_clean()
