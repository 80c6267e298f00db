"""Golden argv of the green room's listeners."""

from __future__ import annotations

from pathlib import Path

from summitcast.media.greenroom import rtmp_listener_argv, srt_listener_argv

OUTPUTS = [
    "-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy",
    "-f", "mpegts", "udp://127.0.0.1:5002?pkt_size=1316",
    "-map", "0:v:0?", "-vf", "fps=2,scale=320:-2", "-q:v", "5",
    "-update", "1", "-atomic_writing", "1", "-f", "image2", "/g/rtmp.jpg",
]  # fmt: skip


def test_rtmp_listener_argv_relays_and_previews_without_the_key() -> None:
    argv = rtmp_listener_argv("ffmpeg", 4001, 5002, Path("/g/rtmp.jpg"), 2.0)

    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "1",
        "-listen", "1", "-i", "rtmp://127.0.0.1:4001/live/stream",
        *OUTPUTS,
    ]  # fmt: skip


def test_srt_listener_argv_uses_the_key_as_passphrase() -> None:
    argv = srt_listener_argv("ffmpeg", "0.0.0.0", 9200, "k" * 32, 5002, Path("/g/rtmp.jpg"), 2)

    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "1",
        "-probesize", "200000", "-analyzeduration", "500000",
        "-i", f"srt://0.0.0.0:9200?mode=listener&latency=120000&passphrase={'k' * 32}&pbkeylen=16",
        *OUTPUTS,
    ]  # fmt: skip
