"""Must show: a speaker without OBS goes live from Chromium, seen in the green room, then on air."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.broadcast_server import cmdlines_holding, ffmpeg_children, free_port, running_server
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.e2e.test_greenroom_live import (
    _add_speaker,
    _decoded_size,
    _feed,
    _on_air_source,
    _post,
    _preview,
    _room,
    _status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# Set inside the test's own network namespace (see _rerun_in_own_network).
OWN_NETWORK = "SUMMITCAST_TEST_OWN_NETWORK"
BROWSER_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",  # a generated camera picture and a beeping microphone
    "--use-fake-ui-for-media-stream",  # allow the camera without a prompt
    # Chromium leaves out loopback from its ICE candidates unless told; both ends of this
    # test stay on 127.0.0.1 (no other address may be a target here).
    "--allow-loopback-in-peer-connection",
    # Real addresses, never mDNS names (which would multicast on the LAN).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def _rerun_in_own_network(nodeid: str) -> None:
    """Run this test again in a new network namespace that has only loopback.

    Chromium binds its ICE sockets to every interface and checks from each, so on the
    shared machine the server would answer checks sent from its LAN address. In a
    namespace of its own the only address is 127.0.0.1: every packet of the test stays
    on a loopback nobody else sees, and host candidates on loopback are all there is.
    """
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    root = Path(__file__).resolve().parents[2]
    argv = [
        "unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid,
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        cwd=root,
        env={**os.environ, OWN_NETWORK: "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0 and "unshare failed" in output and os.environ.get("CI") != "true":
        pytest.skip(f"no network namespace here: {output.strip()}")
    assert done.returncode == 0, output[-6000:]


def _speaker_view(page: Any) -> str:
    """What the speaker's page says (state and message), for a failure's message."""
    state = page.get_attribute("#golive", "data-state")
    return f"page state={state!r}: {page.text_content('#golive-status')!r}"


def test_speaker_goes_live_from_the_browser_into_the_green_room_and_on_air(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require_chromium()
    if os.environ.get(OWN_NETWORK) != "1":
        _rerun_in_own_network(request.node.nodeid)
        return
    from playwright.sync_api import sync_playwright

    with running_server(
        tmp_path,
        greenroom_rtmp_port=free_port(),
        greenroom_srt_port=free_port(socket.SOCK_DGRAM),
        webrtc_host_addresses=["127.0.0.1"],
    ) as b:
        secret = b.settings.secret_key.get_secret_value().encode()
        speaker_id, token = _add_speaker(b.app.state.database, b.slug, secret)
        b.press("start-now")  # the run of show is on air; the speaker waits in the green room

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            try:
                page = browser.new_context().new_page()
                console: list[str] = []
                page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
                refused: list[str] = []
                page.on(
                    "response",
                    lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None,
                )
                # Too early: the page waits for the green room and offers to go live once
                # the producer opens it.
                page.goto(f"{b.base}/speak/{token}/live")
                assert page.is_visible("#golive-closed")
                _post(b, f"{speaker_id}/open")
                key = b.client.get(_room(b)).text.split('class="feed-key">')[1].split("<")[0]
                page.wait_for_selector("#golive-camera", timeout=15_000)
                b.wait_for(lambda: _feed(b)["status"] is not None, 15, "the green room to listen")

                # The speaker's way in: their portal link, then the page's buttons.
                page.goto(f"{b.base}/speak/{token}")
                page.click("text=Go live from this browser")
                page.click("#golive-camera")
                # The camera preview plays (the page's script says so once it has the stream).
                page.wait_for_selector("#golive[data-state='preview']", timeout=10_000)
                # The stream is attached at once; its first frame (and so a width) follows a
                # moment later, sooner or later on a loaded machine.
                page.wait_for_function(
                    "document.querySelector('#golive-preview').videoWidth > 0", timeout=10_000
                )
                page.click("#golive-start")

                # The producer's green room receives it exactly like an OBS push.
                try:
                    b.wait_for(
                        lambda: _status(b)["receiving"] == "browser (WebRTC)",
                        30,
                        "the browser's feed",
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{_speaker_view(page)}; console={console}") from exc
                b.wait_for(
                    lambda: _preview(b, speaker_id)[0] == "image/jpeg", 10, "a preview frame"
                )
                width, height = _decoded_size(_preview(b, speaker_id)[1])
                assert width == 320  # the green room's preview width
                assert height > 0
                b.wait_for(lambda: _status(b)["audio_level_db"] is not None, 10, "a sound level")
                page.wait_for_selector(
                    "#golive[data-state='green-room']", timeout=10_000
                )  # the speaker is told the producer sees them
                assert _feed(b)["taken"] is False
                assert _on_air_source(b) in ("file", "slate")
                # The key reached no command line on the way (the publisher uses none).
                assert cmdlines_holding(key) == []

                _post(b, f"{speaker_id}/take")
                b.wait_for(lambda: _on_air_source(b) == "live", 20, "the speaker on air")
                assert b.on_air()["live"] is True
                page.wait_for_selector("#golive[data-state='on-air']", timeout=10_000)
                assert page.is_visible("#golive-on-air")

                # Closing the tab ends the feed cleanly: the green room stops receiving.
                page.close(run_before_unload=True)
                b.wait_for(lambda: _status(b)["receiving"] is None, 15, "the feed to end")
                assert b.app.state.browser_live.sessions == {}
                # Every request of the page succeeded (no favicon exists: browsers ask anyway).
                assert [r for r in refused if not r.endswith("/favicon.ico")] == []
                assert not [c for c in console if c.startswith("error") and "404" not in c]
            finally:
                browser.close()
        b.press("end")
    assert ffmpeg_children() == []
