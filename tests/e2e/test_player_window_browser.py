"""Chromium plays on while the live playlists slide (a window of three 2 s segments)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import m3u8
import pytest

from summitcast.media.ladder import LadderSpec
from summitcast.runtime import broadcast_manager as manager
from tests.e2e.broadcast_server import ffmpeg_children, running_server
from tests.e2e.browser import chromium_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_player_follows_a_sliding_live_window_and_replays_the_whole_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ladder_for = manager.ladder_for

    def short_window(*args: object) -> LadderSpec:
        # Six seconds instead of three minutes: the window slides within the test.
        spec = real_ladder_for(*args)  # type: ignore[arg-type]
        return dataclasses.replace(spec, live_window_s=6)

    monkeypatch.setattr(manager, "ladder_for", short_window)
    console: list[str] = []
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("hold")  # an endless slate after the start
        top = f"{b.base}/hls/{b.slug}/{b.session_id}/360p/index.m3u8"
        with chromium_page(console=console) as page:
            page.goto(f"{b.base}/s/{b.slug}/watch?session={b.session_id}")
            page.wait_for_function(
                "() => window.summitcastPlayer && document.querySelector('video').currentTime > 1",
                timeout=30_000,
            )
            before = page.evaluate("() => document.querySelector('video').currentTime")
            page.wait_for_function(
                f"() => document.querySelector('video').currentTime > {before + 12}",
                timeout=40_000,
            )
            live = m3u8.loads(httpx.get(top).text)
            fatal = page.evaluate("() => window.summitcastPlayer.errors.filter(e => e.fatal)")
            start_sn = page.evaluate("() => window.summitcastPlayer.hls.latestLevelDetails.startSN")
        b.press("end")
        b.wait_for(lambda: "#EXT-X-ENDLIST" in httpx.get(top).text, 20, "the end")
        vod = m3u8.loads(httpx.get(top.replace("index.m3u8", "vod.m3u8")).text)
    assert fatal == [], console
    assert len(live.segments) == 3  # the window, however long the session
    assert live.media_sequence >= 4  # it slid, and the player followed it
    assert start_sn >= 4
    assert vod.is_endlist
    assert [s.uri for s in vod.segments][:2] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert len(vod.segments) >= live.media_sequence + 3  # the replay keeps every segment
    assert ffmpeg_children() == []
