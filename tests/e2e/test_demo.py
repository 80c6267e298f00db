"""`summitcast demo` as a new user runs it: a printed URL serving the demo programme."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.browser import chromium_page
from tests.e2e.conftest import DemoServer

pytestmark = pytest.mark.e2e


def test_demo_prints_url_and_serves_three_sessions(demo_server: DemoServer) -> None:
    page = httpx.get(demo_server.programme_url, timeout=10)

    assert page.status_code == 200
    heading = r'<article class="card session">\s*<h3><a [^>]+>([^<]+)</a>'
    assert re.findall(heading, page.text) == [
        "Opening evening",
        "Voices of the regions",
        "Closing session",
    ]
    assert "Organiser login:" in demo_server.output


@pytest.mark.browser
def test_programme_shows_viewer_local_time_in_browser(demo_server: DemoServer) -> None:
    with chromium_page(timezone_id="Asia/Tokyo") as page:
        page.goto(demo_server.programme_url)
        page.wait_for_selector(".local-time")
        first = page.locator(".local-time").first.inner_text()
        moment = page.locator("time[data-local]").first.get_attribute("datetime")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.reload()
        page.wait_for_selector(".local-time")

    assert moment is not None
    tokyo = datetime.fromisoformat(moment).astimezone(ZoneInfo("Asia/Tokyo"))
    hour12 = tokyo.strftime("%I:%M %p")
    assert first in (f" ({tokyo:%H:%M} Asia/Tokyo)", f" ({hour12} Asia/Tokyo)")
    assert all(url.startswith(demo_server.base_url) for url in requests)
