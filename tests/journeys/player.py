"""Driving the summitcast player in a journey: its menus, its clock, its caption cues."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import JSHandle, Page

VIDEO = "[data-player] video"
# A second played, with a picture (its size known: a frame was decoded).
PLAYING = f"""() => {{
  const v = document.querySelector('{VIDEO}');
  return !!window.summitcastPlayer && v.currentTime > 1 && v.videoWidth > 0;
}}"""
# A caption cue on screen: a track is showing and a cue is active at the playhead.
CUE = f"""() => {{
  const v = document.querySelector('{VIDEO}');
  for (const t of v.textTracks) {{
    if (t.mode === 'showing' && t.activeCues && t.activeCues.length) return t.activeCues[0].text;
  }}
  return null;
}}"""
_HAS_OPTION = """([menu, wanted]) => Array.from(
  document.querySelectorAll(`[data-player] select.${menu} option`)
).some(o => o.text.toLowerCase().includes(wanted))"""


def wait_playing(page: Page, why: Callable[[], str], timeout_ms: int = 60_000) -> None:
    """Wait until the player plays (a second in); on failure say what the player and why() saw."""
    try:
        page.wait_for_function(PLAYING, timeout=timeout_ms)
    except Exception as error:
        seen = page.evaluate(
            f"""() => {{
              const v = document.querySelector('{VIDEO}');
              const p = window.summitcastPlayer;
              return {{ currentTime: v && v.currentTime, paused: v && v.paused,
                        readyState: v && v.readyState, src: p && p.hls && p.hls.url,
                        errors: p ? p.errors.slice(-10) : 'no player' }};
            }}"""
        )
        raise AssertionError(f"the player did not play: {seen}\n{why()}") from error


def current_time(page: Page) -> float:
    """The player's playhead, in seconds."""
    return float(page.evaluate(f"() => document.querySelector('{VIDEO}').currentTime"))


def advances(page: Page, seconds: float, timeout_ms: int = 20_000) -> None:
    """Wait until the video plays on by seconds from where it is now."""
    at = current_time(page)
    page.wait_for_function(
        f"() => document.querySelector('{VIDEO}').currentTime > {at + seconds}",
        timeout=timeout_ms,
    )


def choose(page: Page, menu: str, text: str) -> str:
    """Pick the option of a player menu (sc-quality…) whose label contains text; its value."""
    select = page.locator(f"[data-player] select.{menu}")
    wanted = text.lower()
    try:
        page.wait_for_function(_HAS_OPTION, arg=[menu, wanted])
    except Exception as error:
        labels = select.locator("option").all_inner_texts()
        raise AssertionError(f"no {text!r} in the {menu} menu: {labels}") from error
    labels = select.locator("option").all_inner_texts()
    select.select_option(label=next(x for x in labels if wanted in x.lower()))
    return str(select.input_value())


def wait_for_cue(page: Page, timeout_ms: int = 30_000) -> JSHandle:
    """Wait until a caption cue shows; its text."""
    return page.wait_for_function(CUE, timeout=timeout_ms)


def fills_its_column_at_16_9(page: Page) -> None:
    """The video is as wide as its player block and 16:9 (not drawn at its native size)."""
    video, block = page.evaluate(
        f"""() => [document.querySelector('{VIDEO}'), document.querySelector('[data-player]')]
          .map(e => {{ const r = e.getBoundingClientRect(); return [r.width, r.height]; }})"""
    )
    size = page.viewport_size
    assert video[0] >= block[0] - 1, (size, video, block)
    assert abs(video[0] / video[1] - 16 / 9) < 0.02, (size, video)
