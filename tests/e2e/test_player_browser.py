"""Chromium plays a broadcast through the summitcast player, switching language and quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.broadcast_server import ffmpeg_children, running_server
from tests.e2e.browser import chromium_page

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
