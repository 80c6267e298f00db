"""The viewer's day: programme → watch → language, quality, captions → audio only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chromium_page
from tests.journeys.conftest import SLUG, Journey, Server, demo_server
from tests.journeys.player import (
    advances,
    choose,
    fills_its_column_at_16_9,
    wait_for_cue,
    wait_playing,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LOOP_S = 150  # one round of the demo's looping session (~2 min), with some slack


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo with its first session on air (three languages, English captions)."""
    with demo_server(tmp_path_factory.mktemp("viewer")) as running:
        yield running


def _on_air(server: Server) -> object:
    return httpx.get(server.url(f"/s/{SLUG}/sessions/1/on-air.json"), timeout=5).json()


def test_viewer_watches_and_changes_language_quality_captions_then_audio_only(
    server: Server,
) -> None:
    journey = Journey("viewer", server.base_url)
    with chromium_page((1280, 720)) as page:
        journey.watch(page, "viewer")
        page.set_default_timeout(15_000)

        # The programme, then the way to the broadcast from it.
        page.goto(server.url(f"/s/{SLUG}"))
        journey.shot(page, "programme")
        watch = page.locator(f"a[href^='/s/{SLUG}/watch']")
        assert watch.count() >= 1, "the programme page links to no watch page"
        watch.first.click()
        page.wait_for_url(f"**/s/{SLUG}/watch**")
        wait_playing(page, server.diagnosis)
        journey.shot(page, "watch-playing")

        # Another language: the French interpretation.
        french = choose(page, "sc-language", "French")
        page.wait_for_function(
            "() => { const h = window.summitcastPlayer.hls;"
            " return h.audioTracks[h.audioTrack] && h.audioTracks[h.audioTrack].lang === 'fr'; }"
        )
        advances(page, 1)

        # A fixed quality instead of automatic: the smallest rung.
        heights = page.evaluate("() => window.summitcastPlayer.hls.levels.map(l => l.height)")
        smallest = min(h for h in heights if h)
        level = int(choose(page, "sc-quality", f"{smallest}p"))
        page.wait_for_function(f"() => window.summitcastPlayer.hls.currentLevel === {level}")
        advances(page, 1)
        journey.shot(page, "french-smallest-quality")

        # Captions: a cue is on screen.
        english = choose(page, "sc-captions", "English")
        try:
            # The captioned speech is the demo's second item, a few seconds after the server
            # starts; a viewer who comes later meets it again when the loop comes round.
            cue = wait_for_cue(page, timeout_ms=LOOP_S * 1000).json_value()
        except Exception as error:
            raise AssertionError(f"no caption cue on screen; on air: {_on_air(server)}") from error
        assert "Welcome to the summit" in str(cue)
        journey.shot(page, "captions")

        # Audio only: the picture stops, the sound plays on.
        choose(page, "sc-quality", "Audio only")
        page.wait_for_function("() => window.summitcastPlayer.mode === 'audio'")
        advances(page, 2, timeout_ms=30_000)
        audio_only = page.evaluate(
            "() => { const h = window.summitcastPlayer.hls;"
            " return h.levels.every(l => !l.height) && !h.url.endsWith('master.m3u8'); }"
        )
        assert audio_only, page.evaluate("() => window.summitcastPlayer.hls.url")
        journey.shot(page, "audio-only")

        # The watch page at both window sizes, back on the picture.
        choose(page, "sc-quality", "Auto")
        page.wait_for_function(
            "() => document.querySelector('[data-player] video').videoWidth > 0", timeout=30_000
        )
        advances(page, 1)
        # Back at the live edge, not at the start of the session's playlist.
        behind = page.evaluate("() => window.summitcastPlayer.behindLiveS()")
        assert behind is not None, _on_air(server)
        assert behind < 10, (behind, _on_air(server))
        # The viewer's language and captions survived the trip through audio only.
        expect(page.locator("[data-player] select.sc-language")).to_have_value(french)
        expect(page.locator("[data-player] select.sc-captions")).to_have_value(english)
        journey.shots_at_sizes(page, "watch", fills_its_column_at_16_9)
        fatal = page.evaluate("() => window.summitcastPlayer.errors.filter(e => e.fatal)")
    assert fatal == []
    journey.assert_clean()
