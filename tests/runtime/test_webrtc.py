"""The server's WebRTC peer: a Python aiortc "browser" goes live into a real green-room listener."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import io
import logging
import math
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import imageio_ffmpeg
import numpy
import pydantic
import pytest
from aiortc import AudioStreamTrack, RTCSessionDescription, VideoStreamTrack
from pydantic import SecretStr

from summitcast.config import Settings
from summitcast.domain.contribution import check_offer
from summitcast.errors import ConflictError
from summitcast.media.listeners import ListenerPorts
from summitcast.runtime.greenroom import SpeakerFeed
from summitcast.runtime.webrtc import (
    BrowserContributions,
    NotServedHereError,
    browser_ice_servers,
    host_addresses,
    ice_servers,
    peer_connection,
    picture_size,
    publisher_argv,
)
from summitcast.services.greenroom import FeedPlan

pytestmark = pytest.mark.integration
KEY = "speaker-key-" + "k" * 20
FEED_ID = 7
TONE_HZ = 440


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MovingPicture(VideoStreamTrack):
    """A camera: 320x240, a bar sweeping across, 30 frames a second."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = numpy.full((240, 320, 3), 40, numpy.uint8)
        x = (pts // 3000) % 320
        image[:, max(0, x - 20) : x, :] = 230
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(AudioStreamTrack):
    """A microphone hearing a 440 Hz tone at about -13 dBFS RMS."""

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # silence, paced in real time (20 ms, mono)
        rate, start = frame.sample_rate, frame.pts
        t = (numpy.arange(frame.samples) + start) / rate
        samples = (0.3 * 32767 * numpy.sin(2 * math.pi * TONE_HZ * t)).astype(numpy.int16)
        tone = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        tone.sample_rate, tone.pts, tone.time_base = rate, start, fractions.Fraction(1, rate)
        return tone


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A green room on free ports; the peers offer loopback only (nothing else is allowed here)."""
    return Settings(
        environment="test",
        secret_key="test-secret-" + "x" * 32,
        data_dir=tmp_path / "data",
        greenroom_rtmp_port=_port(),
        greenroom_srt_port=_port(socket.SOCK_DGRAM),
        greenroom_max_feeds=1,
        webrtc_host_addresses=["127.0.0.1"],
    )


@contextlib.asynccontextmanager
async def green_room_feed(settings: Settings, folder: Path) -> AsyncIterator[SpeakerFeed]:
    """The speaker's real green-room listeners (RTMP gate, ffmpeg, preview), as OBS meets them."""
    ports = ListenerPorts(
        rtmp=settings.greenroom_rtmp_port,
        srt=settings.greenroom_srt_port,
        rtmp_upstream=_port(),
        rtmp_relay=_port(socket.SOCK_DGRAM),
        srt_relay=_port(socket.SOCK_DGRAM),
    )
    running = SpeakerFeed(imageio_ffmpeg.get_ffmpeg_exe(), "127.0.0.1", ports, KEY, folder, 4.0)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def _room(feed: object) -> Any:
    """The green room's manager as the peer sees it: the feeds it runs, and ffmpeg."""
    return SimpleNamespace(
        feeds={} if feed is None else {FEED_ID: feed},
        broadcasts=SimpleNamespace(ffmpeg=imageio_ffmpeg.get_ffmpeg_exe()),
    )


def _plan(key: str = KEY) -> FeedPlan:
    return FeedPlan(FEED_ID, session_id=1, speaker_id=1, slot=0, taken=False, ingest_key=key)


class Browser:
    """A Python stand-in for the speaker's page: offer, answer, send until closed."""

    def __init__(self, settings: Settings, *, audio: bool = True) -> None:
        self.pc = peer_connection(settings)
        self.pc.addTrack(MovingPicture())
        if audio:
            self.pc.addTrack(Tone())

    async def offer(self) -> Any:
        with host_addresses(("127.0.0.1",)):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return check_offer("offer", self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


async def _until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _decoded(path: Path) -> tuple[int, int]:
    with av.open(io.BytesIO(path.read_bytes()), format="image2pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def _relay_frames(url: str) -> dict[str, int]:
    """Decode a couple of seconds of the relay a feeder would read when the feed is taken."""
    counts = {"video": 0, "audio": 0}
    with av.open(url, options={"probesize": "500000", "analyzeduration": "1000000"}) as relay:
        for frame in relay.decode(*relay.streams):
            counts["video" if isinstance(frame, av.VideoFrame) else "audio"] += 1
            if counts["video"] >= 30 and counts["audio"] >= 30:
                break
    return counts


def test_browser_feed_reaches_the_green_room_like_an_obs_push(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    asyncio.run(_reaches_the_green_room(settings, tmp_path))

    # Neither the speaker's address (ICE candidate pairs) nor their key reached the logs.
    assert "127.0.0.1" not in caplog.text
    assert KEY not in caplog.text


async def _reaches_the_green_room(settings: Settings, tmp_path: Path) -> None:
    async with green_room_feed(settings, tmp_path / "feed") as feed:
        await _send_and_close(settings, feed)


async def _send_and_close(settings: Settings, feed: SpeakerFeed) -> None:
    contributions = BrowserContributions(settings, _room(feed))
    browser = Browser(settings)
    offer = await browser.offer()
    try:
        session_id, answer = await contributions.answer(_plan(), offer)
        # Host candidates on loopback only: no STUN server was asked for a public address.
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates
        assert all(" 127.0.0.1 " in c and "typ host" in c for c in candidates)
        await browser.accept(answer)

        # The same listener as OBS's: the gate let the key through, the preview is drawn.
        await _until(lambda: feed.receiving() == "rtmp", 20, "the green room to receive")
        preview = await _until(feed.preview_path, 10, "a preview frame")
        assert _decoded(preview) == (320, 240)
        level = await _until(feed.audio_level_db, 10, "a sound level")
        assert -20 < level < -8  # the tone (-13.5 dBFS RMS), through Opus and AAC
        assert contributions.status(FEED_ID, session_id)["state"] == "sending"
        assert contributions.status(FEED_ID, session_id)["green_room"] == "rtmp"
        assert feed.gate.refused == 0

        # What the programme would get once the producer takes the feed: picture and sound.
        source = feed.live_source()
        assert source is not None
        counts = await asyncio.to_thread(_relay_frames, source.url)
        assert counts["video"] >= 30
        assert counts["audio"] >= 30

        # The tab closes: the session ends by itself and the listener stops receiving.
        await browser.pc.close()
        await _until(lambda: FEED_ID not in contributions.sessions, 10, "the session to end")
        assert contributions.status(FEED_ID, session_id)["state"] == "ended"
        await _until(lambda: feed.receiving() is None, 10, "the listener to stop receiving")
    finally:
        await browser.pc.close()
        await contributions.close()


def test_second_browser_replaces_the_first_and_stop_ends_it(
    settings: Settings, tmp_path: Path
) -> None:
    asyncio.run(_replace_then_stop(settings, tmp_path))


async def _replace_then_stop(settings: Settings, tmp_path: Path) -> None:
    async with green_room_feed(settings, tmp_path / "feed") as feed:
        await _second_replaces_first(settings, feed)


async def _second_replaces_first(settings: Settings, feed: SpeakerFeed) -> None:
    contributions = BrowserContributions(settings, _room(feed))
    first, second, third = Browser(settings), Browser(settings, audio=False), Browser(settings)
    try:
        first_id, answer = await contributions.answer(_plan(), await first.offer())
        await first.accept(answer)
        await _until(lambda: feed.receiving() == "rtmp", 20, "the first browser's feed")

        listener_runs = feed.rtmp.health.restarts
        second_id, answer = await contributions.answer(_plan(), await second.offer())
        await second.accept(answer)

        assert contributions.status(FEED_ID, first_id) == {
            "state": "ended",
            "reason": "You went live from another browser window.",
        }
        await _until(
            lambda: contributions.status(FEED_ID, second_id)["state"] == "sending",
            20,
            "the second browser's picture",
        )
        # A new run of the listener (the first publisher left) receives the second browser.
        await _until(
            lambda: feed.rtmp.health.restarts > listener_runs and feed.receiving() == "rtmp",
            20,
            "the second browser's feed",
        )
        # A stale page (the first) cannot stop the second one's session.
        assert await contributions.stop(FEED_ID, first_id) is False
        assert await contributions.stop(FEED_ID, second_id) is True
        assert contributions.sessions == {}
        # Going live again at once works (and is not mistaken for OBS while the listener lags).
        listener_runs = feed.rtmp.health.restarts
        third_id, answer = await contributions.answer(_plan(), await third.offer())
        await third.accept(answer)
        await _until(
            lambda: contributions.status(FEED_ID, third_id)["state"] == "sending",
            20,
            "the third browser's picture",
        )
        await _until(
            lambda: feed.rtmp.health.restarts > listener_runs and feed.receiving() == "rtmp",
            20,
            "the third browser's feed",
        )
        assert await contributions.stop(FEED_ID, third_id) is True
        await _until(lambda: feed.receiving() is None, 10, "the listener to stop receiving")
    finally:
        for browser in (first, second, third):
            await browser.pc.close()
        await contributions.close()


def test_offer_is_refused_while_obs_sends_or_where_no_listener_runs(settings: Settings) -> None:
    asyncio.run(_refusals(settings))


async def _refusals(settings: Settings) -> None:
    sending = SimpleNamespace(receiving=lambda: "srt")
    offer = check_offer("offer", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n")

    with pytest.raises(ConflictError, match="OBS"):
        await BrowserContributions(settings, _room(sending)).answer(_plan(), offer)
    with pytest.raises(ConflictError, match="still opening"):
        await BrowserContributions(settings, _room(None)).answer(_plan(), offer)
    elsewhere = settings.model_copy(update={"broadcast_workers": False})
    with pytest.raises(NotServedHereError):
        await BrowserContributions(elsewhere, _room(None)).answer(_plan(), offer)


def test_ice_servers_are_none_by_default_and_the_configured_ones_otherwise(
    settings: Settings,
) -> None:
    assert browser_ice_servers(settings) == []
    assert ice_servers(settings) == []
    ours = settings.model_copy(
        update={
            "webrtc_ice_servers": ["stun:stun.example.org:3478", "turn:turn.example.org:3478"],
            "webrtc_ice_username": "summit",
            "webrtc_ice_credential": SecretStr("s3cret"),
        }
    )
    assert browser_ice_servers(ours) == [
        {"urls": "stun:stun.example.org:3478", "username": "summit", "credential": "s3cret"},
        {"urls": "turn:turn.example.org:3478", "username": "summit", "credential": "s3cret"},
    ]
    from_env = Settings(
        environment="test",
        secret_key="test-secret-" + "x" * 32,
        webrtc_ice_servers="stun:a.example:3478, turn:b.example:3478",
        webrtc_host_addresses="127.0.0.1",
    )
    assert from_env.webrtc_ice_servers == ["stun:a.example:3478", "turn:b.example:3478"]
    assert from_env.webrtc_host_addresses == ["127.0.0.1"]


def test_publisher_argv_sends_to_the_listener_behind_the_gate_without_a_key() -> None:
    assert publisher_argv("ffmpeg", 4001) == [
        "ffmpeg", "-hide_banner", "-loglevel", "error",
        "-probesize", "500000", "-analyzeduration", "1000000",
        "-f", "flv", "-i", "pipe:0",
        "-map", "0", "-c", "copy",
        "-f", "flv", "rtmp://127.0.0.1:4001/live/stream",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "field",
    [
        {"webrtc_ice_servers": "https://stun.example.org"},
        {"webrtc_host_addresses": "my-laptop.local"},
    ],
)
def test_settings_refuse_what_is_not_an_ice_url_or_an_address(field: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(environment="test", secret_key="test-secret-" + "x" * 32, **field)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "expected"),
    [((640, 480), (640, 480)), ((1920, 1080), (1280, 720)), ((721, 1281), (404, 720))],
)
def test_picture_size_caps_at_720p_and_keeps_even_sides(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert picture_size(*size) == expected


def test_the_app_loads_aiortc_only_when_a_browser_goes_live() -> None:
    # ~30 MiB per worker: most nodes never see a browser speaker.
    probe = "import sys, summitcast.app; print(sorted({'aiortc', 'aioice'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == "[]"
