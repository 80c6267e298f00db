"""Live ingest: a studio pushes over RTMP and SRT with the session's key; a wrong key is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.broadcast_server import FFMPEG, Broadcast, ffmpeg_children, running_server

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


def test_live_srt_with_key_goes_on_air_and_wrong_passphrase_is_refused(tmp_path: Path) -> None:
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
        finally:
            _stop(studio)
        b.press("end")
    assert ffmpeg_children() == []
