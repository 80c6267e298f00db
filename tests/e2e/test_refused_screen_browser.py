"""A location screen with a wrong (or re-issued) link tells its host and stops hammering."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from summitcast.loadtest.counting_proxy import counting_proxy
from tests.e2e.browser import chromium_page
from tests.loadtest.servers import seed, serve

pytestmark = pytest.mark.e2e

WATCH_S = 8.0


def test_screen_with_a_wrong_secret_shows_what_to_do_and_waits_minutes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    (location,) = seed(url, 1)
    env = {"SUMMITCAST_DATABASE_URL": url, "SUMMITCAST_DATA_DIR": str(tmp_path)}
    console: list[str] = []

    with (
        serve(env, tmp_path) as server,
        counting_proxy("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])) as (port, counts),
        chromium_page(console=console) as page,
    ):
        page.goto(f"http://127.0.0.1:{port}/l/{location.location_id}#k=an-old-re-issued-secret")
        cover = page.locator("#screen-refused")
        expect(cover).to_be_visible(timeout=20_000)
        told_at = time.monotonic()
        time.sleep(max(0.0, WATCH_S - (told_at - counts.attempts[0])))
        status = page.locator("#presence-status")
        shown = (cover.locator(".slate-title").inner_text(), status.get_attribute("data-state"))
        attempts = counts.total

    assert shown == (
        "This screen's link is no longer valid: ask the organiser for the new link.",
        "bad_signature",
    )
    # The first retry waits 30-60 s; the old client reconnected every ~0.75 s (~10 here).
    assert attempts == 1
