"""The host's day: register a hall → approved → the screen plays the broadcast → a network cut."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import chromium_page
from tests.journeys.conftest import (
    ORGANISER,
    PRODUCER,
    SLUG,
    Journey,
    Server,
    demo_server,
    log_in,
)
from tests.journeys.player import VIDEO, advances, choose, current_time, wait_for_cue, wait_playing

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Short presence timings so that a 20 s cut really takes the screen offline on the server.
INTERVAL_S = 3
TIMEOUT_S = 8
# A country the demo's simulated audience never uses: its live count is this screen alone.
COUNTRY = "LU"
HALL = "Salle des fêtes, Esch"
CUT_S = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo on air, with heartbeats every 3 s and a location offline after 8 s of silence."""
    with demo_server(
        tmp_path_factory.mktemp("host"),
        SUMMITCAST_HEARTBEAT_INTERVAL_S=str(INTERVAL_S),
        SUMMITCAST_HEARTBEAT_TIMEOUT_S=str(TIMEOUT_S),
    ) as running:
        yield running


def _register(host: Page, server: Server) -> str:
    """Register the hall on the public form; the screen link it shows."""
    host.goto(server.url(f"/s/{SLUG}"))
    host.click(f"a[href='/s/{SLUG}/register']")
    host.fill("#label", HALL)
    host.select_option("#country", COUNTRY)
    host.fill("#city", "Esch-sur-Alzette")
    host.select_option("#kind", "hall")
    host.fill("#expected_audience", "120")
    host.click("#register-form button[type=submit]")
    link = host.locator("#host-link")
    link.wait_for()
    href = link.get_attribute("href")
    assert href is not None
    assert "#k=" in href
    return href


def _approve(organiser: Page, server: Server) -> None:
    """The organiser finds the pending hall by name and approves it."""
    log_in(organiser, server, ORGANISER)
    organiser.goto(server.url(f"/backstage/s/{SLUG}/locations"))
    organiser.fill("#f-q", "Esch")
    organiser.select_option("#f-status", "pending")
    organiser.click("#filters button[type=submit]")
    row = organiser.locator("#locations tbody tr", has_text=HALL)
    expect(row).to_have_count(1)
    row.locator(".approve-one").click()
    organiser.locator("#list-notice").wait_for()


def _text(page: Page, selector: str) -> str:
    return " ".join(page.locator(selector).first.inner_text().split())


def _now_next_agree(screen: Page, control: Page, timeout_s: float = 20) -> tuple[str, str]:
    """Wait until the screen's now/next equal the control room's; the pair."""
    deadline = time.monotonic() + timeout_s
    while True:
        on_screen = (_text(screen, "#on-now .title"), _text(screen, "#up-next .title"))
        in_control = (_text(control, "[data-field=on_air]"), _text(control, "[data-field=next]"))
        if on_screen == in_control:
            return on_screen
        assert time.monotonic() < deadline, (on_screen, in_control)
        screen.wait_for_timeout(250)  # both pages update by themselves; look again shortly


def _fills_window(page: Page) -> None:
    """The picture takes the whole window but one strip of controls; nothing scrolls."""
    box = page.evaluate(
        f"() => {{ const r = document.querySelector('{VIDEO}').getBoundingClientRect();"
        " const d = document.documentElement;"
        " return [r.left, r.top, r.width, r.height, innerWidth, innerHeight,"
        " d.scrollWidth, d.scrollHeight]; }"
    )
    left, top, width, height, window_w, window_h, scroll_w, scroll_h = box
    assert (left, top) == (0, 0), box
    assert width >= window_w - 1, box
    assert height >= 0.9 * window_h, box  # at most a tenth for the control strip
    assert (scroll_w, scroll_h) == (window_w, window_h), box


def _controls_uncovered(page: Page) -> None:
    """Every shown menu of the player can be reached: nothing lies over its middle."""
    page.hover("[data-player]")
    covered = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-player] select'))
          .filter(s => s.offsetParent !== null)
          .filter(s => {
            const r = s.getBoundingClientRect();
            const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return !(hit === s || s.contains(hit));
          })
          .map(s => s.className + ' under ' + (document.elementFromPoint(
            s.getBoundingClientRect().x + s.getBoundingClientRect().width / 2,
            s.getBoundingClientRect().y + s.getBoundingClientRect().height / 2) || {}).className)"""
    )
    assert covered == [], f"{page.viewport_size}: {covered}"


def _screen_fits(page: Page) -> None:
    _fills_window(page)
    _controls_uncovered(page)


def test_host_registers_gets_approved_and_the_screen_plays_through_a_network_cut(
    server: Server,
) -> None:
    journey = Journey("host", server.base_url)
    with chromium_page((1920, 1080)) as host:
        browser = host.context.browser
        assert browser is not None
        organiser = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        control = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        journey.watch(host, "host")
        journey.watch(organiser, "organiser")
        journey.watch(control, "control room")
        for page in (host, organiser, control):
            page.set_default_timeout(20_000)

        link = _register(host, server)
        journey.shot(host, "registered")
        _approve(organiser, server)

        # The demo has looped since the server started: the producer ends it, and the
        # hall's screen is put up before the show starts again, as on a summit day.
        log_in(control, server, PRODUCER)
        control.goto(server.url(server.demo_url("Control room:")))
        control.click("#on-air-panel button[data-action='end']")
        control.locator("[data-field=status][data-status=ended]").wait_for()

        host.goto(server.url(link))
        host.locator("#presence-status[data-state=online]").wait_for()
        expect(host.locator("#screen-slate")).to_be_visible()
        journey.shot(host, "screen-waiting")

        # The show starts from the top: the screen plays by itself, muted until one click.
        control.click("#on-air-panel button[data-action='start-now']")
        control.locator("[data-field=status][data-status=on_air]").wait_for()
        journey.shot(control, "show-started")
        wait_playing(host, server.diagnosis)
        expect(host.locator("#screen-slate")).to_be_hidden()
        journey.shot(host, "screen-playing")
        _fills_window(host)
        assert host.evaluate(f"() => document.querySelector('{VIDEO}').muted")
        host.click("[data-action=unmute]")
        host.wait_for_function(
            f"() => {{ const v = document.querySelector('{VIDEO}');"
            " return !v.muted && v.volume > 0 && !v.paused; }"
        )
        expect(host.locator("[data-action=unmute]")).to_be_hidden()
        advances(host, 1)

        # Captions, chosen once: a cue is on screen.
        host.hover("[data-player]")
        choose(host, "sc-captions", "English")
        cue = wait_for_cue(host).json_value()
        assert "Welcome to the summit" in str(cue)
        journey.shot(host, "screen-captions")

        # Now and next: what the control room says is on air, not the planned times.
        now, upcoming = _now_next_agree(host, control)
        assert now not in ("", "—"), (now, upcoming)
        journey.shot(control, "control-room-on-air")

        # The organiser watches this country's live count while the hall loses its network.
        organiser.goto(server.url(f"/backstage/s/{SLUG}/dashboard?country={COUNTRY}"))
        organiser.locator("#live-state[data-state=open]").wait_for()
        online_here = organiser.locator(f"#per-country tr[data-country={COUNTRY}] .online")
        expect(online_here).to_have_text("1")
        before = current_time(host)
        with journey.network_cut(host.context, CUT_S):
            expect(online_here).to_have_text("0", timeout=CUT_S * 1000)
            # The server no longer counts the hall: the screen must not claim it does.
            expect(host.locator("#presence-status")).not_to_have_attribute(
                "data-state", "online", timeout=5_000
            )
            journey.shot(host, "screen-offline")
        # Back by themselves: nobody touches the screen.
        host.locator("#presence-status[data-state=online]").wait_for(timeout=30_000)
        expect(online_here).to_have_text("1", timeout=30_000)
        host.wait_for_function(
            f"() => document.querySelector('{VIDEO}').currentTime > {before + 3}",
            timeout=45_000,
        )
        advances(host, 2, timeout_ms=30_000)
        assert not host.evaluate(f"() => document.querySelector('{VIDEO}').paused")
        assert not host.evaluate(f"() => document.querySelector('{VIDEO}').muted")
        journey.shot(host, "screen-recovered")
        _now_next_agree(host, control)

        journey.shots_at_sizes(host, "location-screen", _screen_fits)

        # The screen is restarted (a power cut in the hall): captions stay as chosen.
        host.reload()
        wait_playing(host, server.diagnosis)
        captions = host.locator("[data-player] select.sc-captions option:checked")
        expect(captions).to_have_text(re.compile("English"))
    journey.assert_clean()
