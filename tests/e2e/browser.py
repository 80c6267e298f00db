"""Launch Debian's Chromium headless through Playwright, for tests that need a real browser.

Playwright's own browser download is never used (no network here): Debian's
``chromium`` package provides ``/usr/bin/chromium``. Without it a test is skipped on
a developer machine and fails in CI, where a missing browser is a setup bug.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root in a container
    "--disable-gpu",
    "--disable-background-networking",  # no update checks, no safe-browsing lists
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the calling test when Chromium is missing, unless in CI (CI=true), where it fails."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium_page(
    viewport: tuple[int, int] = (1280, 800),
    *,
    console: list[str] | None = None,
    timezone_id: str | None = None,
) -> Iterator[Page]:
    """Yield a fresh page in headless Chromium; page console lines go to ``console`` if given."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]}, timezone_id=timezone_id
            )
            page = context.new_page()
            if console is not None:
                page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
                page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
            yield page
            context.close()
        finally:
            browser.close()
