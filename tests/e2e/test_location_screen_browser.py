"""The location screen in Chromium against a real server: the broadcast on air plays on it.

One session of three one-minute items (the first in two languages with English
captions) is started by the producer while the screen is open: the screen picks it up
without a reload, plays it, turns the sound on with one click, shows the chosen
captions, follows "take next", keeps its choices across a reload and recovers from a
dropped network by itself. The server runs the presence socket as ``summitcast
serve`` does (web/transport/presence_socket.py), which pushes what is on air.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect

from summitcast.app import create_app
from summitcast.media.testclips import Tone, make_clip, write_webvtt
from summitcast.services import locations, programme
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from tests.e2e.broadcast_server import (
    FFMPEG,
    PASSWORD,
    PRODUCER,
    Broadcast,
    free_port,
    seed,
)
from tests.e2e.broadcast_server import test_settings as broadcast_settings
from tests.e2e.browser import chromium_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ITEM_S = 60  # long enough that no item ends by itself while the test looks at it
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CAPTION = "Welcome to the hall"


@dataclass
class Screen:
    """A running broadcast server and the secret link of one approved location."""

    broadcast: Broadcast
    link: str


def _media(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    clip = {"duration_s": float(ITEM_S), "width": 320, "height": 180, "fps": 10}
    tone = {"width": 64, "height": 36, "fps": 10, "duration_s": float(ITEM_S)}
    return {
        "one": make_clip(FFMPEG, folder / "one.mp4", text="One", **clip),  # type: ignore[arg-type]
        "one_en": make_clip(FFMPEG, folder / "one.en.m4a", tones=(Tone(440, "eng"),), **tone),  # type: ignore[arg-type]
        "one_fr": make_clip(FFMPEG, folder / "one.fr.m4a", tones=(Tone(880, "fra"),), **tone),  # type: ignore[arg-type]
        "one_vtt": write_webvtt(folder / "one.en.vtt", [(0.0, ITEM_S - 0.5, CAPTION)]),
        "two": make_clip(FFMPEG, folder / "two.mp4", text="Two", **clip),  # type: ignore[arg-type]
        "three": make_clip(FFMPEG, folder / "three.mp4", text="Three", **clip),  # type: ignore[arg-type]
    }


@contextmanager
def screen_server(tmp_path: Path) -> Iterator[Screen]:
    """Serve the seeded app as `summitcast serve` does (presence socket protocol); stop it after."""
    settings = broadcast_settings(tmp_path, heartbeat_interval_s=1.0, heartbeat_timeout_s=3.0)
    database = Database(settings.effective_database_url)
    database.upgrade()
    slug, session_id = seed(database, _media(tmp_path / "media"), item_s=ITEM_S)
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        location = locations.register_location(
            db,
            summit,
            locations.LocationInput(label="Nairobi hall", country="KE", city="Nairobi"),
            at_risk=(),
            links=LinkSecrets.of(settings),
        )
        locations.approve_location(db, location)
        link = f"/l/{location.public_id}#k={LinkSecrets.of(settings).open(location)}"
    app = create_app(settings, database=database)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="summitcast.web.transport.presence_socket:PresenceWebSockets",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    client = httpx.Client(base_url=base, timeout=10)
    try:
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text)
        assert token
        client.post(
            "/login",
            data={"email": PRODUCER, "password": PASSWORD, "csrf_token": token.group(1)},
        )
        page = client.get(f"/backstage/s/{slug}/sessions/{session_id}/control")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        b = Broadcast(base, slug, session_id, settings, client, token.group(1), app)
        yield Screen(b, link)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        database.dispose()


def _console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    # Chromium's console line for a failed load names no URL: note which one it was.
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


def _playing_past(page: Page, seconds: float, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        f"() => document.querySelector('[data-player] video').currentTime > {seconds}",
        timeout=timeout_ms,
    )


def _now(page: Page) -> float:
    return float(page.evaluate("() => document.querySelector('[data-player] video').currentTime"))


def _overlay(page: Page) -> tuple[str, str]:
    return (
        page.locator("#on-now .title").inner_text(),
        page.locator("#up-next .title").inner_text(),
    )


def test_location_screen_plays_follows_and_recovers(tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with screen_server(tmp_path) as screen, chromium_page(viewport=(1920, 1080)) as page:
        b = screen.broadcast
        errors = _console_errors(page)
        page.goto(b.base + screen.link)
        # Nothing on air yet: the slate, and the session that comes next.
        expect(page.locator("#screen-slate")).to_be_visible()
        assert _overlay(page) == ("—", "Opening")
        expect(page.locator("#presence-status")).to_have_attribute("data-state", "online")

        # The producer starts: the screen picks the broadcast up without a reload.
        b.press("start-now")
        _playing_past(page, 1)
        expect(page.locator("#screen-slate")).to_be_hidden()
        on_air = b.on_air()
        # The broadcast's own state: the planned times (the session began a minute
        # ago, one-minute items) would say the second item.
        assert _overlay(page) == (on_air["on_air"], on_air["next"]) == ("Speech one", "Speech two")

        # One click turns the sound on.
        assert page.evaluate("() => document.querySelector('[data-player] video').muted")
        page.click("[data-action=unmute]")
        assert not page.evaluate("() => document.querySelector('[data-player] video').muted")
        expect(page.locator("[data-action=unmute]")).to_be_hidden()

        # Captions chosen in the player's menu show their cue in the picture.
        page.select_option("[data-player] select.sc-captions", label="English")
        page.wait_for_function(
            """(text) => Array.from(document.querySelector('[data-player] video').textTracks)
                 .some(t => t.mode === 'showing' && t.activeCues
                       && Array.from(t.activeCues).some(c => c.text === text))""",
            arg=CAPTION,
            timeout=20_000,
        )
        page.screenshot(path=str(SCREENSHOTS / "location-screen-1920x1080.png"))

        # Take next: the overlay follows within a push period or two.
        b.press("next")
        expect(page.locator("#on-now .title")).to_have_text("Speech two", timeout=5_000)
        on_air = b.on_air()
        assert (
            _overlay(page) == (on_air["on_air"], on_air["next"]) == ("Speech two", "Speech three")
        )

        # The captions choice is the screen's: it survives a reload.
        page.set_viewport_size({"width": 1280, "height": 720})
        page.reload()
        _playing_past(page, 1)
        expect(page.locator("[data-player] select.sc-captions")).to_have_value("0")
        page.screenshot(path=str(SCREENSHOTS / "location-screen-1280x720.png"))

        # The network drops for 12 s: playback and presence come back by themselves.
        before_drop = len(errors)
        page.context.set_offline(True)
        time.sleep(12)
        page.context.set_offline(False)
        back_at = _now(page)
        _playing_past(page, back_at + 3, timeout_ms=40_000)
        expect(page.locator("#presence-status")).to_have_attribute(
            "data-state", "online", timeout=20_000
        )
        # Chromium itself logs each request refused while offline; nothing else may appear.
        during_drop = errors[before_drop:]
        del errors[before_drop:]

        # A link too slow for the lowest video rung (~0.58 Mb/s): sound only, by itself.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        slow = {"offline": False, "latency": 50, "downloadThroughput": 25_000}
        cdp.send("Network.emulateNetworkConditions", slow | {"uploadThroughput": 100_000})
        page.wait_for_function("() => window.summitcastPlayer.mode === 'audio'", timeout=60_000)
        # The sound-only playlist is a new source: read the time once it has data.
        page.wait_for_function(
            "() => document.querySelector('[data-player] video').readyState >= 3", timeout=20_000
        )
        _playing_past(page, _now(page) + 2)
        expect(page.locator("[data-player]")).to_have_attribute(
            "data-sound-only", re.compile("too slow")
        )
        assert page.evaluate("() => window.summitcastPlayer.audioOnlyReason") == "bandwidth"
        b.press("end")
        # The session ends: the screen says so instead of a frozen picture.
        expect(page.locator("#screen-slate .slate-title")).to_have_text(
            "This session has ended.", timeout=5_000
        )
    assert errors == [], errors
    assert [e for e in during_drop if "ERR_INTERNET_DISCONNECTED" not in e] == [], during_drop
