"""Login errors, flags and the site icon in a real Chromium against a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from summitcast.domain.accounts import Role
from summitcast.services import accounts, programme
from summitcast.storage.database import Database
from tests.conftest import PASSWORD
from tests.e2e.app_server import AppServer, app_server
from tests.e2e.browser import chromium_page, require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ORGANISER = "organiser@example.org"
# Speakers from countries whose flags are easy to tell apart, one of them mostly white.
SPEAKERS = [("Ana Souza", "BR"), ("Wanjiru Kamau", "KE"), ("Aiko Sato", "JP"), ("Lena Vogel", "DE")]


@dataclass
class Watch:
    """What a page logged and fetched: console errors and failed responses."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        """Listen to the page's console and responses."""
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        # Sub-resources only: the login page answers 401 on purpose.
        if response.status >= 400 and response.request.resource_type != "document":
            self.failed.append(f"{response.status} {response.url}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app on a free loopback port, seeded with speakers and an organiser."""
    require_chromium()
    env = {"SUMMITCAST_BROADCAST_WORKERS": "false"}
    with app_server(tmp_path_factory.mktemp("pages"), env) as running:
        _seed(running.database_url)
        yield running


def _seed(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.session() as db:
            summit = programme.create_summit(
                db,
                programme.SummitInput(
                    slug="world",
                    title="World Summit",
                    time_zone="UTC",
                    start_date=datetime(2027, 7, 17, tzinfo=UTC).date(),
                    end_date=datetime(2027, 7, 18, tzinfo=UTC).date(),
                ),
            )
            session = programme.add_session(
                db,
                summit,
                programme.SessionInput(
                    title="Opening",
                    planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                    planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
                ),
            )
            item = programme.add_item(db, session, programme.ItemInput(title="Voices"))
            ids = [
                programme.add_speaker(db, summit, programme.SpeakerInput(name=n, country=c)).id
                for n, c in SPEAKERS
            ]
            programme.set_item_speakers(db, item, ids)
            user = accounts.create_user(db, email=ORGANISER, password=PASSWORD)
            accounts.grant_role(db, user=user, summit=summit, role=Role.ORGANISER)
    finally:
        database.dispose()


def _visible_flags(page: Page) -> list[dict[str, object]]:
    """Each flag image on the page: its alt, drawn size and whether its file decoded."""
    page.locator("img.sc-flag").last.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('img.sc-flag')].every(i => i.complete)", timeout=5_000
    )
    flags: list[dict[str, object]] = page.eval_on_selector_all(
        "img.sc-flag",
        """imgs => imgs.map(i => ({
            alt: i.alt, src: i.getAttribute('src'), natural: i.naturalWidth,
            width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height,
        }))""",
    )
    return flags


def test_login_error_is_shown_in_the_form_with_the_email_kept(server: AppServer) -> None:
    watch = Watch()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page((1280, 720)) as page:
        watch.attach(page)
        page.goto(f"{server.base_url}/login")
        page.fill("#email", ORGANISER)
        page.fill("#password", "not the password")
        page.click("button[type=submit]")

        expect(page.locator("#login-error")).to_have_text("E-mail or password is wrong.")
        expect(page.locator("#email")).to_have_value(ORGANISER)
        expect(page.locator("#password")).to_be_focused()
        assert page.url == f"{server.base_url}/login"
        page.screenshot(path=str(SCREENSHOTS / "login-error.png"))

        # The same form then logs in: its new CSRF token works.
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.base_url}/backstage")

    # Chromium logs the 401 of the page itself as a failed load; nothing else.
    assert [e for e in watch.errors if "status of 401" not in e] == []
    assert watch.failed == []


def test_public_pages_draw_flags_as_named_images(server: AppServer) -> None:
    watch = Watch()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page((1280, 720)) as page:
        watch.attach(page)
        page.goto(f"{server.base_url}/s/world/speakers")
        speakers = _visible_flags(page)
        page.screenshot(path=str(SCREENSHOTS / "flags-speakers.png"), full_page=True)
        page.goto(f"{server.base_url}/s/world/sessions/1")
        running_order = _visible_flags(page)
        page.screenshot(path=str(SCREENSHOTS / "flags-session.png"), full_page=True)

    assert [f["src"] for f in speakers] == [
        f"/static/build/flags/{c.lower()}.svg" for _, c in sorted(SPEAKERS)
    ]
    # Beside the name a flag is decoration; alone (after a speaker) it carries the name.
    assert {f["alt"] for f in speakers} == {""}
    assert [f["alt"] for f in running_order] == ["Brazil", "Kenya", "Japan", "Germany"]
    for flag in speakers + running_order:
        assert flag["natural"] > 0, flag  # type: ignore[operator]
        assert flag["width"] > 10, flag  # type: ignore[operator]
        assert flag["height"] > 7, flag  # type: ignore[operator]
    assert watch.errors == []
    assert watch.failed == []


def test_site_icon_is_served_to_the_browser(server: AppServer) -> None:
    with chromium_page((400, 300)) as page:
        page.goto(f"{server.base_url}/login")
        hrefs = page.eval_on_selector_all("link[rel=icon]", "ls => ls.map(l => l.href)")
        answers = [page.request.get(href) for href in hrefs]
        page.goto(hrefs[1])
        page.screenshot(path=str(SCREENSHOTS / "favicon-svg.png"))

    assert [a.status for a in answers] == [200, 200]
    assert [a.headers["content-type"] for a in answers] == [
        "image/vnd.microsoft.icon",
        "image/svg+xml",
    ]


def test_login_lockout_is_shown_in_the_form(server: AppServer) -> None:
    # Last in this module: it uses up the login attempts of 127.0.0.1 for 15 minutes.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page((1280, 720)) as page:
        page.goto(f"{server.base_url}/login")
        for n in range(10):
            # One guess at each of many accounts: the limit per client (one account's
            # guesses meet its own short, doubling delay first).
            page.fill("#email", f"guess{n}@example.org")
            page.fill("#password", f"guess {n}")
            page.click("button[type=submit]")
            if page.locator("#login-error", has_text="Too many attempts").count():
                break
        page.fill("#email", ORGANISER)
        page.fill("#password", PASSWORD)
        with page.expect_response(f"{server.base_url}/login") as answer:
            page.click("button[type=submit]")

        assert answer.value.status == 429
        retry = int(answer.value.headers["retry-after"])
        expect(page.locator("#login-error")).to_have_text(
            f"Too many attempts to log in; try again in {-(-retry // 60)} minutes."
        )
        expect(page.locator("#email")).to_have_value(ORGANISER)
        page.screenshot(path=str(SCREENSHOTS / "login-locked.png"))
