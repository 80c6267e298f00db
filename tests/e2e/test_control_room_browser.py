"""A producer runs a show from the control room in Chromium: words, valid buttons, keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import delete, select

from summitcast.media.testclips import make_clip
from summitcast.services.broadcast import MediaKind, attach_media
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, ItemMedia
from tests.e2e.broadcast_server import FFMPEG, Broadcast, ffmpeg_children, running_server
from tests.e2e.browser import chromium_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ITEM_S = 60  # long enough that no item ends by itself while the test presses buttons
ON_AIR = ["end", "hold", "live", "next"]


def _lengthen_items(b: Broadcast, folder: Path) -> None:
    """Give every item a one-minute clip (the seeded ones last 2 s) and no language files."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_clip(FFMPEG, folder / "long.mp4", duration_s=ITEM_S, fps=10, text="Long")
    database: Database = b.app.state.database
    with database.session() as db:
        items = list(db.scalars(select(Item).where(Item.session_id == b.session_id)))
        ids = [item.id for item in items]
        db.execute(
            delete(ItemMedia).where(
                ItemMedia.item_id.in_(ids), ItemMedia.kind != MediaKind.PROGRAMME.value
            )
        )
        for item in items:
            item.planned_duration_s = ITEM_S
            attach_media(db, item, MediaKind.PROGRAMME, str(clip))


def _state(page: Page) -> dict[str, object]:
    """What the producer sees: status words and raw status, enabled buttons, on air, next."""
    state: dict[str, object] = page.evaluate(
        """() => {
          const status = document.querySelector('[data-field=status]');
          const current = document.querySelector('#run-of-show li.current');
          return {
            words: status.textContent.trim(),
            status: status.dataset.status,
            enabled: [...document.querySelectorAll('button[data-action]')]
              .filter((b) => !b.disabled).map((b) => b.dataset.action).sort(),
            on_air: document.querySelector('[data-field=on_air]').textContent.trim(),
            next: document.querySelector('[data-field=next]').textContent.trim(),
            current: current ? Number(current.dataset.index) : null,
          };
        }"""
    )
    return state


def _expect(page: Page, **expected: object) -> dict[str, object]:
    """Wait (up to 10 s) until the page shows what is expected; return what it shows."""
    deadline = time.monotonic() + 10
    state = _state(page)
    while {k: state[k] for k in expected} != expected and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        state = _state(page)
    assert {k: state[k] for k in expected} == expected
    return state


def _log_in(page: Page, b: Broadcast) -> None:
    """Give the browser the producer's session (logged in by the test's HTTP client)."""
    page.context.add_cookies(
        [{"name": c.name, "value": c.value, "url": b.base} for c in b.client.cookies.jar]
    )


def _errors(console: list[str]) -> list[str]:
    return [line for line in console if line.startswith(("error:", "pageerror:"))]


def test_producer_runs_the_show_with_buttons_and_keys(tmp_path: Path) -> None:
    console: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_server(tmp_path) as b:
        _lengthen_items(b, tmp_path / "long")
        with chromium_page((1920, 1080), console=console) as page:
            _log_in(page, b)
            failed: list[str] = []
            page.on(
                "response",
                lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(b.control)
            # Set once: still there at the end only if no click reloaded the page.
            page.evaluate("() => { window.sameRoom = true; }")
            _expect(page, words="Not started", status="idle", enabled=["start", "start-now"])

            page.click("button[data-action=start]")
            shown = _expect(page, words="On air", status="on_air", enabled=ON_AIR)
            assert (shown["on_air"], shown["next"], shown["current"]) == (
                "Speech one",
                "Speech two",
                0,
            )

            # A key typed into a text field is text, not a shortcut.
            page.evaluate(
                """() => {
                  const field = document.createElement('input');
                  field.id = 'scratch';
                  document.body.append(field);
                }"""
            )
            page.type("#scratch", "nh")
            page.wait_for_timeout(1500)
            _expect(page, words="On air", on_air="Speech one")
            page.evaluate("() => { document.getElementById('scratch').remove(); }")

            page.keyboard.press("n")
            shown = _expect(page, words="On air", on_air="Speech two", next="Speech three")
            assert (shown["current"], shown["enabled"]) == (1, ON_AIR)
            # The time left counts down from the item's minute.
            page.wait_for_function(
                "() => (document.querySelector('#preview video') || {}).currentTime > 1",
                timeout=30_000,
            )
            left = page.text_content("[data-field=remaining]") or ""
            assert left.endswith(" left"), left
            assert left.startswith("0:5"), left  # under a minute, and only seconds gone
            row = page.text_content("#run-of-show li.current [data-run-state]") or ""
            assert row.startswith("on air · 0:5"), row
            page.evaluate("() => window.scrollTo(0, 0)")  # typing in the field scrolled down
            page.screenshot(path=str(SCREENSHOTS / "control-room-1920x1080.png"))
            page.set_viewport_size({"width": 1280, "height": 720})
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "control-room-1280x720.png"))
            layout = page.evaluate(
                """() => {
                  const box = (sel) => {
                    const rect = document.querySelector(sel).getBoundingClientRect();
                    const top = rect.top + window.scrollY;
                    return { top, width: rect.width, height: rect.height };
                  };
                  const player = box('[data-player]');
                  const video = box('[data-player] video');
                  return {
                    player_top: player.top, video_ratio: video.width / video.height,
                    buttons_top: box('.cr-buttons').top, ingest_top: box('.cr-ingest').top,
                  };
                }"""
            )

            page.click("button[data-action=hold]")
            shown = _expect(page, words="Holding", status="hold", on_air="We will be right back")
            assert shown["enabled"] == ["back", "end", "live", "next"]

            page.click("button[data-action=live]")
            shown = _expect(page, words="Live from the studio", status="on_air")
            assert shown["enabled"] == ["back", "end", "hold", "live", "next"]

            page.click("button[data-action=back]")
            shown = _expect(page, words="On air", on_air="Speech two", enabled=ON_AIR)

            page.keyboard.press("h")
            _expect(page, words="Holding", enabled=["back", "end", "live", "next"])

            page.click("button[data-action=end]")
            _expect(page, words="Ended", status="ended", enabled=["start", "start-now"])
            # A disabled shortcut does nothing (no request, no error).
            page.keyboard.press("n")
            page.wait_for_timeout(1200)
            _expect(page, words="Ended", enabled=["start", "start-now"])
            assert page.evaluate("() => window.sameRoom") is True
    assert _errors(console) == [], (console, failed)
    # The preview and the desk at the top, side by side at 1280 px; the secrets below them.
    assert layout["player_top"] < 200, layout
    assert layout["buttons_top"] < 250, layout
    assert layout["ingest_top"] > 720, layout
    assert abs(layout["video_ratio"] - 16 / 9) < 0.02, layout
    assert ffmpeg_children() == []


def test_room_follows_items_that_end_by_themselves(tmp_path: Path) -> None:
    console: list[str] = []
    # Three items of 2 s each.
    with running_server(tmp_path) as b, chromium_page((1280, 720), console=console) as page:
        _log_in(page, b)
        page.goto(b.control)
        page.click("button[data-action=start-now]")
        # Only the clock moves on from here: each item ends by itself.
        seen: list[object] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = _state(page)
            if not seen or seen[-1] != state["current"]:
                seen.append(state["current"])
            if state["on_air"] == "Closing slate":
                break
            page.wait_for_timeout(100)
        shown = _expect(page, words="On air", on_air="Closing slate", next="—")
        b.press("end")
        _expect(page, words="Ended", enabled=["start", "start-now"])
    assert shown["enabled"] == ["end", "hold", "live"]  # nothing left to take
    assert [index for index in seen if index is not None] == [0, 1, 2]
    assert seen[-1] is None
    assert _errors(console) == [], console
    assert ffmpeg_children() == []
