"""Passkey and authenticator-app sign-in in Chromium against a real uvicorn server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from summitcast.services import accounts
from summitcast.storage.database import Database
from summitcast.storage.tables import WebAuthnCredential
from tests.conftest import PASSWORD
from tests.e2e.app_server import AppServer, app_server
from tests.e2e.browser import chromium_page, require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSKEY_USER = "passkey@example.org"
TOTP_USER = "totp@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app on a free port, served as http://localhost (an IP cannot hold passkeys)."""
    require_chromium()
    env = {"SUMMITCAST_BROADCAST_WORKERS": "false", "SUMMITCAST_JOB_WORKERS": "false"}
    with app_server(tmp_path_factory.mktemp("second-factor"), env, host_name="localhost") as app:
        database = Database(app.database_url)
        try:
            with database.session() as db:
                for email in (PASSKEY_USER, TOTP_USER):
                    accounts.create_user(db, email=email, password=PASSWORD)
        finally:
            database.dispose()
        yield app


def _password(page: Page, server: AppServer, email: str) -> None:
    page.goto(f"{server.base_url}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")


def _log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/$"))


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"second-factor-{name}.png"), full_page=True)


def test_passkey_enrolled_then_used_to_log_in(server: AppServer) -> None:
    with chromium_page() as page:
        # Chromium's virtual authenticator stands in for the laptop's platform passkey.
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        _password(page, server, PASSKEY_USER)
        page.wait_for_url(re.compile(r"/backstage$"))
        page.goto(f"{server.base_url}/account/security")
        page.fill("#passkey-name", "Test laptop")
        page.click("#passkey-add")
        expect(page.locator("#passkeys")).to_contain_text("Test laptop")
        _shot(page, "passkey-added")
        _log_out(page)

        _password(page, server, PASSKEY_USER)
        page.wait_for_url(re.compile(r"/login/second-factor$"))
        expect(page.locator("h1")).to_have_text("Confirm it is you")
        _shot(page, "second-step")
        page.click("#passkey-sign-in")
        page.wait_for_url(re.compile(r"/backstage$"))

        expect(page.locator("h1")).to_have_text("Backstage")
        credentials = cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]}
        )
    assert len(credentials["credentials"]) == 1
    database = Database(server.database_url)
    try:
        with database.session() as db:
            stored = db.scalars(select(WebAuthnCredential)).one()
            assert stored.name == "Test laptop"
            assert stored.credential_id == credentials["credentials"][0]["credentialId"].rstrip(
                "="
            ).replace("+", "-").replace("/", "_")
            assert stored.last_used_at is not None
            assert stored.sign_count == credentials["credentials"][0]["signCount"]
    finally:
        database.dispose()


def test_authenticator_app_and_recovery_code_log_in(server: AppServer) -> None:
    with chromium_page() as page:
        _password(page, server, TOTP_USER)
        page.wait_for_url(re.compile(r"/backstage$"))
        page.goto(f"{server.base_url}/account/security")
        page.click("#totp-start")
        secret = page.locator("#totp-secret").inner_text()
        expect(page.locator(".qr svg")).to_be_visible()
        _shot(page, "totp-setup")
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("#totp-confirm button[type=submit]")
        codes = page.locator("#recovery-codes code").all_inner_texts()
        assert len(codes) == 10
        _log_out(page)

        _password(page, server, TOTP_USER)
        page.wait_for_url(re.compile(r"/login/second-factor$"))
        # The next step's code: accepted, and not the one that turned the app on (reused).
        page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        page.click("#code-form button[type=submit]")
        page.wait_for_url(re.compile(r"/backstage$"))
        _log_out(page)

        for attempt in range(2):
            _password(page, server, TOTP_USER)
            page.wait_for_url(re.compile(r"/login/second-factor$"))
            page.fill("#code", codes[0])
            page.click("#code-form button[type=submit]")
            if attempt == 0:
                page.wait_for_url(re.compile(r"/backstage$"))
                _log_out(page)

        expect(page.locator("#second-factor-error")).to_contain_text("used already")
        _shot(page, "recovery-code-reused")
