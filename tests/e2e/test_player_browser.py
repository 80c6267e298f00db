"""Chromium plays a broadcast through the summitcast player, switching language and quality."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.broadcast_server import ffmpeg_children, running_server
from tests.e2e.browser import chromium_page
from tests.e2e.test_location_screen_browser import screen_server

pytestmark = pytest.mark.e2e


def test_player_plays_ten_seconds_switches_language_and_quality(tmp_path: Path) -> None:
    console: list[str] = []
    with running_server(tmp_path) as b:
        b.press("start-now")
        with chromium_page(console=console) as page:
            page.goto(f"{b.base}/s/{b.slug}/watch?session={b.session_id}")
            page.wait_for_function(
                "() => window.summitcastPlayer && document.querySelector('video').currentTime > 1",
                timeout=30_000,
            )
            tracks = page.evaluate("() => window.summitcastPlayer.hls.audioTracks.map(t => t.lang)")
            assert "fr" in tracks
            page.evaluate("() => window.summitcastPlayer.setAudioTrack(1)")
            page.evaluate("() => window.summitcastPlayer.setQuality(1)")
            page.wait_for_function(
                "() => document.querySelector('video').currentTime > 10", timeout=40_000
            )
            audio = page.evaluate("() => window.summitcastPlayer.hls.audioTrack")
            level = page.evaluate("() => window.summitcastPlayer.hls.currentLevel")
            fatal = page.evaluate("() => window.summitcastPlayer.errors.filter(e => e.fatal)")
        b.press("end")
    assert (audio, level, fatal) == (1, 1, []), console
    assert ffmpeg_children() == []


def test_player_keeps_playing_through_an_encoder_restart(tmp_path: Path) -> None:
    console: list[str] = []
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("hold")  # an endless slate: the kill lands mid-programme
        with chromium_page(console=console) as page:
            page.goto(f"{b.base}/s/{b.slug}/watch?session={b.session_id}")
            page.wait_for_function(
                "() => window.summitcastPlayer && document.querySelector('video').currentTime > 2",
                timeout=30_000,
            )
            # Every wait for data, with how long the picture stood still.
            page.evaluate(
                """() => {
                  const v = document.querySelector('video');
                  window.waits = [];
                  let since = null;
                  v.addEventListener('waiting', () => { since = performance.now(); });
                  v.addEventListener('playing', () => {
                    if (since !== null) window.waits.push((performance.now() - since) / 1000);
                    since = null;
                  });
                }"""
            )
            before = page.evaluate("() => document.querySelector('video').currentTime")
            runtime = b.app.state.broadcasts.runtimes[b.session_id]
            os.kill(runtime.playout.encoder.health.pid, signal.SIGKILL)
            # Ten more seconds of picture after the kill, whatever the player had buffered.
            page.wait_for_function(
                f"() => document.querySelector('video').currentTime > {before + 10}",
                timeout=40_000,
            )
            waits = page.evaluate("() => window.waits")
            paused = page.evaluate("() => document.querySelector('video').paused")
            fatal = page.evaluate("() => window.summitcastPlayer.errors.filter(e => e.fatal)")
            restarts = runtime.playout.encoder.health.restarts
        b.press("end")
    assert (restarts, paused, fatal) == (1, False, []), console
    # At most one stall: the buffer runs dry while the new encoder starts. The player
    # then holds the picture until a segment and a margin are buffered (player.js,
    # refill): resuming on a single segment made it stall a second time, ~0.9 s, in
    # about one run in six. Chromium also fires 'waiting' for ~10 ms at some segment
    # boundaries after the restart; nobody can see those, so only waits of 0.1 s or
    # more count as stalls.
    stalls = [w for w in waits if w >= 0.1]
    assert len(stalls) <= 1, (waits, console)
    assert ffmpeg_children() == []


SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_watch_page_player_fills_its_column_at_16_9_with_captions_and_no_console_error(
    tmp_path: Path,
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    boxes: dict[int, list[float]] = {}
    # One-minute items, the first with a caption all along (the location screen's server).
    with screen_server(tmp_path) as screen:
        b = screen.broadcast
        with chromium_page(viewport=(1280, 720)) as page:
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            # Opened before the start: the player waits for the broadcast (its playlists
            # would answer 404 until then), and starts by itself once it has begun.
            page.goto(f"{b.base}/s/{b.slug}/watch?session={b.session_id}")
            expect(page.locator(".sc-player-waiting")).to_contain_text("not started yet")
            b.press("start-now")
            page.wait_for_function(
                "() => document.querySelector('[data-player] video').currentTime > 0.3",
                timeout=40_000,
            )
            # Captions from the player's menu: the cue is drawn in the picture, and
            # nothing is loaded that the CSP refuses (hls.js's data:,WEBVTT <track>).
            page.select_option("[data-player] select.sc-captions", label="English")
            page.wait_for_function(
                """() => Array.from(document.querySelector('[data-player] video').textTracks)
                     .some(t => t.mode === 'showing' && t.activeCues && t.activeCues.length)""",
                timeout=20_000,
            )
            assert page.locator("[data-player] video track").count() == 0
            for width, height in ((1280, 720), (1920, 1080)):
                page.set_viewport_size({"width": width, "height": height})
                boxes[width] = page.evaluate(
                    """() => {
                      const block = document.querySelector('[data-player]');
                      const video = block.querySelector('video').getBoundingClientRect();
                      const column = block.parentElement;
                      const style = getComputedStyle(column);
                      const inner = column.clientWidth - parseFloat(style.paddingLeft)
                        - parseFloat(style.paddingRight);
                      return [video.width, video.height, inner];
                    }"""
                )
                page.screenshot(path=str(SCREENSHOTS / f"watch-{width}x{height}.png"))
        b.press("end")
    for width, (video_w, video_h, column_w) in boxes.items():
        assert abs(video_w - column_w) < 1, (width, video_w, column_w)
        assert abs(video_h - video_w * 9 / 16) < 1, (width, video_w, video_h)
    assert errors == [], errors
