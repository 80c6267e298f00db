"""Live ingest: a studio pushes over RTMP and SRT with the session's key; a wrong key is refused."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import av
import httpx
import numpy
import pytest

from tests.e2e.broadcast_server import (
    FFMPEG,
    Broadcast,
    cmdlines_holding,
    ffmpeg_children,
    running_server,
)

pytestmark = pytest.mark.e2e


def _push(url: str, fmt: str, seconds: int = 12) -> subprocess.Popen[bytes]:
    """A studio: a tiny test picture and tone, sent in real time."""
    return subprocess.Popen(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac",
            "-f", fmt, url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _key(b: Broadcast) -> str:
    return b.client.get(b.control).text.split('id="ingest-key">')[1].split("<")[0]


def _health(b: Broadcast) -> dict[str, object]:
    health = b.health()["health"]
    assert isinstance(health, dict)
    return health


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.kill()
    proc.wait(timeout=10)
    assert proc.stderr is not None
    with proc.stderr:
        return proc.stderr.read().decode(errors="replace")


def test_live_rtmp_with_key_goes_on_air_and_wrong_key_is_refused(tmp_path: Path) -> None:
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("live")
        b.wait_for(lambda: b.health()["health"] is not None, 15, "the ingest to listen")
        port = b.settings.ingest_rtmp_port
        wrong = _push(f"rtmp://127.0.0.1:{port}/live/not-the-key", "flv", seconds=3)
        try:
            b.wait_for(lambda: _health(b)["input"]["refused"] >= 1, 15, "the refusal")  # type: ignore[index]
            assert _health(b)["input"]["receiving"] is None  # type: ignore[index]
        finally:
            _stop(wrong)
        studio = _push(f"rtmp://127.0.0.1:{port}/live/{_key(b)}", "flv")
        try:
            b.wait_for(
                lambda: _health(b)["on_air"]["source"] == "live",  # type: ignore[index]
                20,
                "the live input on air",
            )
            assert _health(b)["input"]["receiving"] == "rtmp"  # type: ignore[index]
            assert b.on_air()["on_air"] == "Live from the studio"
            # The key stops at the gate: no listener or feeder carries it in /proc.
            assert cmdlines_holding(_key(b), besides=(studio.pid,)) == []
        finally:
            _stop(studio)
        # The studio dropped: the hold slate stands in by itself.
        b.wait_for(
            lambda: _health(b)["on_air"]["source"] == "fallback",  # type: ignore[index]
            15,
            "the fallback slate",
        )
        b.press("end")
    assert ffmpeg_children() == []


def test_live_srt_with_key_goes_on_air_and_wrong_passphrase_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("live")
        b.wait_for(lambda: b.health()["health"] is not None, 15, "the ingest to listen")
        port = b.settings.ingest_srt_port
        wrong = _push(
            f"srt://127.0.0.1:{port}?passphrase=wrong-passphrase-123&pbkeylen=16", "mpegts", 3
        )
        assert wrong.wait(timeout=20) != 0  # the handshake is rejected: the caller gives up
        _stop(wrong)
        assert _health(b)["input"]["receiving"] is None  # type: ignore[index]
        studio = _push(f"srt://127.0.0.1:{port}?passphrase={_key(b)}&pbkeylen=16", "mpegts")
        try:
            b.wait_for(
                lambda: _health(b)["on_air"]["source"] == "live",  # type: ignore[index]
                20,
                "the live input on air",
            )
            assert _health(b)["input"]["receiving"] == "srt"  # type: ignore[index]
            # Every listener and feeder is running: none shows the passphrase in /proc.
            assert cmdlines_holding(_key(b), besides=(studio.pid,)) == []
        finally:
            _stop(studio)
        key = _key(b)
        b.press("end")
    assert key not in caplog.text  # nor in any log line (the refused caller's included)
    assert ffmpeg_children() == []


def _interpreter(
    url: str, hz: int, seconds: int = 14, fmt: str = "mpegts"
) -> subprocess.Popen[bytes]:
    """An interpreter: sound only, sent in real time."""
    return subprocess.Popen(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"sine=frequency={hz}:duration={seconds}",
            "-c:a", "aac", "-f", fmt, url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _window_hz(url: str) -> list[float]:
    """The loudest frequency (rounded to 10 Hz) of each whole second of an audio rendition."""
    with av.open(url) as container:
        rate = container.streams.audio[0].rate
        samples = numpy.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    found = []
    for at in range(0, len(samples) - rate, rate):
        window = samples[at : at + rate]
        spectrum = numpy.abs(numpy.fft.rfft(window))
        found.append(round(float(numpy.fft.rfftfreq(rate, 1 / rate)[spectrum.argmax()]), -1))
    return found


def test_live_interpreter_over_srt_becomes_the_french_rendition(tmp_path: Path) -> None:
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("live")
        b.wait_for(lambda: b.health()["health"] is not None, 15, "the ingest to listen")
        key = _key(b)
        french = b.settings.ingest_interpreter_srt_port + 1  # en is language 0, fr 1
        assert f"srt://127.0.0.1:{french}?passphrase={key}" in b.client.get(b.control).text
        studio = _push(f"srt://127.0.0.1:{b.settings.ingest_srt_port}?passphrase={key}&pbkeylen=16",
                       "mpegts", seconds=16)  # fmt: skip
        interpreter = _interpreter(f"srt://127.0.0.1:{french}?passphrase={key}&pbkeylen=16", 880)
        try:
            b.wait_for(
                lambda: "interpreters fr" in str(_health(b)["on_air"]["label"]),  # type: ignore[index]
                25,
                "the French interpreter on air",
            )
            assert _health(b)["interpreters"] == {"en": None, "fr": "srt"}
            time.sleep(5)  # five seconds of interpreted programme
        finally:
            _stop(interpreter)
            _stop(studio)
        b.press("end")
        base = f"{b.base}/hls/{b.slug}/{b.session_id}"
        b.wait_for(
            lambda: "#EXT-X-ENDLIST" in httpx.get(f"{base}/audio_fr/index.m3u8").text, 20, "end"
        )
        english = _window_hz(f"{base}/audio_en/index.m3u8")
        french_hz = _window_hz(f"{base}/audio_fr/index.m3u8")
    # Somewhere in the live stretch, the same seconds: the floor in English, 880 Hz in French.
    both = list(zip(english, french_hz, strict=False))
    assert (440, 880) in both, both
    assert ffmpeg_children() == []


def test_live_interpreter_over_rtmp_speaks_over_the_hold_slate_and_wrong_key_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("hold")  # a slate on air: no floor at all, and no live cut
        b.wait_for(
            lambda: _health(b)["interpreters"] == {"en": None, "fr": None}, 20, "interpreters"
        )
        key = _key(b)
        french = b.settings.ingest_interpreter_rtmp_port + 1  # en is language 0, fr 1
        assert f"rtmp://127.0.0.1:{french}/live/{key}" in b.client.get(b.control).text
        wrong = _interpreter(f"rtmp://127.0.0.1:{french}/live/not-the-key", 1320, 3, "flv")
        try:
            b.wait_for(
                lambda: _health(b)["interpreters_refused"] == {"en": 0, "fr": 1}, 15, "refusal"
            )
            assert _health(b)["interpreters"] == {"en": None, "fr": None}
        finally:
            _stop(wrong)
        interpreter = _interpreter(f"rtmp://127.0.0.1:{french}/live/{key}", 1320, 12, "flv")
        try:
            b.wait_for(
                lambda: "interpreters fr" in str(_health(b)["on_air"]["label"]),  # type: ignore[index]
                20,
                "the French interpreter on air",
            )
            assert _health(b)["interpreters"] == {"en": None, "fr": "rtmp"}
            assert cmdlines_holding(key, besides=(interpreter.pid,)) == []
            # Six seconds of interpreted slate: three whole windows of 1,320 Hz even when
            # a loaded machine cuts the edges short (2 of 3 seen beside other work).
            time.sleep(6)
        finally:
            _stop(interpreter)
        # The interpreter left: the slate goes on, silent in French again, without a seam.
        b.wait_for(
            lambda: "interpreters" not in str(_health(b)["on_air"]["label"]),  # type: ignore[index]
            15,
            "the interpreter off air",
        )
        health_text = b.client.get(f"{b.control}/health.json").text
        b.press("end")
        base = f"{b.base}/hls/{b.slug}/{b.session_id}"
        b.wait_for(
            lambda: "#EXT-X-ENDLIST" in httpx.get(f"{base}/audio_fr/index.m3u8").text, 20, "end"
        )
        english = _window_hz(f"{base}/audio_en/index.m3u8")
        french_hz = _window_hz(f"{base}/audio_fr/index.m3u8")
        video = httpx.get(f"{base}/360p/index.m3u8").text
    assert french_hz.count(1320) >= 3, french_hz
    assert 1320 not in english, english
    assert "#EXT-X-DISCONTINUITY" not in video  # one continuous programme throughout
    assert key not in health_text
    assert key not in caplog.text  # no log line of the app, at any level, holds the key
    assert ffmpeg_children() == []
