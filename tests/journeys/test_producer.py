"""The producer's day: start → take next → hold → cut to live (RTMP) → back → end."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import imageio_ffmpeg
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import chromium_page
from tests.journeys.conftest import PRODUCER, SLUG, Journey, Server, demo_server, log_in
from tests.journeys.player import advances, fills_its_column_at_16_9, wait_playing

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SESSION = "Voices of the regions"  # the demo's second session: tomorrow, not started
PANEL = "#on-air-panel"
# The buttons a producer may press in each state (the control room greys the others).
STARTABLE = {"start", "start-now"}
RUNNING = {"next", "hold", "live", "end"}
VALID = {
    "idle": STARTABLE,
    "countdown": RUNNING,
    "on_air": RUNNING,
    "hold": {"next", "live", "back", "end"},
    "live": {"next", "hold", "live", "back", "end"},  # cutting to live again re-takes the studio
    "ended": STARTABLE,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo, its looping first session ended so that one encoder runs at a time."""
    with demo_server(tmp_path_factory.mktemp("producer")) as running:
        producer = running.logged_in(PRODUCER)
        try:
            answer = producer.post(f"{running.demo_url('Control room:')}/end")
        finally:
            producer.http.close()
        assert answer.status_code in (200, 303), answer.text
        yield running


def _push(url: str, seconds: int = 30) -> subprocess.Popen[bytes]:
    """A studio: a small test picture and a tone, sent in real time over RTMP."""
    return subprocess.Popen(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac",
            "-f", "flv", url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _enabled(page: Page) -> set[str]:
    actions = page.eval_on_selector_all(
        f"{PANEL} button[data-action]",
        "bs => bs.filter(b => !b.disabled).map(b => b.dataset.action)",
    )
    return set(actions)


def _state(page: Page) -> str:
    status = page.locator("[data-field=status]")
    raw = str(status.get_attribute("data-status"))
    return "live" if raw == "on_air" and status.get_attribute("data-live") == "true" else raw


def _settled(page: Page, state: str) -> None:
    """Wait until the desk shows state and exactly the buttons valid in it are enabled."""
    page.wait_for_function(
        """([panel, state, valid]) => {
          const s = document.querySelector('[data-field=status]');
          const live = s.dataset.live === 'true';
          const shown = s.dataset.status === 'on_air' && live ? 'live' : s.dataset.status;
          const on = Array.from(document.querySelectorAll(`${panel} button[data-action]`))
            .filter(b => !b.disabled).map(b => b.dataset.action).sort();
          return shown === state && JSON.stringify(on) === JSON.stringify(valid);
        }""",
        arg=[PANEL, state, sorted(VALID[state])],
        timeout=20_000,
    )


def _press(page: Page, action: str, then: str) -> None:
    """Press a button that must be enabled now; wait for the state it leads to."""
    button = page.locator(f"{PANEL} button[data-action='{action}']")
    expect(button).to_be_enabled()
    before = _state(page)
    button.click()
    try:
        _settled(page, then)
    except Exception as error:
        raise AssertionError(
            f"{action} from {before}: shows {_state(page)} with {sorted(_enabled(page))}"
        ) from error


def test_producer_runs_the_show_from_start_to_end_through_a_live_cut(server: Server) -> None:
    journey = Journey("producer", server.base_url)
    studio: subprocess.Popen[bytes] | None = None
    with chromium_page((1280, 800)) as page:
        journey.watch(page, "control room")
        page.set_default_timeout(20_000)
        log_in(page, server, PRODUCER)
        page.goto(server.url(f"/backstage/s/{SLUG}"))
        page.click(f"a:text-is('{SESSION}')")
        page.click("a:text-is('Open the control room')")
        page.wait_for_url("**/control")
        _settled(page, "idle")
        journey.shot(page, "idle")

        # Start: the session is planned for tomorrow, so a countdown goes on air.
        _press(page, "start", "countdown")
        journey.shot(page, "countdown")
        # Take next: the first item instead of waiting for the planned time.
        _press(page, "next", "on_air")
        expect(page.locator("[data-field=on_air]")).to_have_text("Opening of the day")
        expect(page.locator("[data-field=next]")).to_have_text("Teaching under pressure")
        # The programme preview plays once the encoder has written segments.
        wait_playing(page, server.diagnosis)
        journey.shots_at_sizes(page, "control-room", fills_its_column_at_16_9)
        page.set_viewport_size({"width": 1280, "height": 800})

        _press(page, "hold", "hold")
        journey.shot(page, "hold")

        # Cut to live, and a studio sends over RTMP to the URL the control room gives.
        _press(page, "live", "live")
        rtmp = page.locator(".cr-ingest code", has_text="rtmp://").filter(has_text="/live/")
        url = rtmp.first.inner_text().strip()
        studio = _push(url)
        try:
            expect(page.locator("[data-health=input]")).to_contain_text("rtmp", timeout=30_000)
            expect(page.locator("[data-field=on_air]")).to_contain_text("Live")
            # The preview sits a few seconds behind: let the studio's picture reach it.
            advances(page, 6, timeout_ms=30_000)
            journey.shot(page, "live-from-studio")

            _press(page, "back", "on_air")
        finally:
            studio.kill()
            studio.wait(timeout=10)
            assert studio.stderr is not None
            studio.stderr.close()
        journey.shot(page, "back-to-programme")

        _press(page, "end", "ended")
        journey.shot(page, "ended")
    journey.assert_clean()
