"""Golden argv of the green room's listeners, and reading their audio level."""

from __future__ import annotations

import os
import time
from pathlib import Path

from summitcast.runtime.greenroom import last_level, rtmp_listener_argv, srt_listener_argv

OUTPUTS = [
    "-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy",
    "-f", "mpegts", "udp://127.0.0.1:5002?pkt_size=1316",
    "-map", "0:v:0?", "-vf", "fps=2,scale=320:-2", "-q:v", "5",
    "-update", "1", "-atomic_writing", "1", "-f", "image2", "/g/rtmp.jpg",
    "-map", "0:a:0?", "-af",
    "asetnsamples=n=24000,astats=metadata=1:reset=1,"
    "ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:direct=1:file=/g/rtmp.level",
    "-f", "null", "-",
]  # fmt: skip


def test_rtmp_listener_argv_relays_and_previews_without_the_key() -> None:
    argv = rtmp_listener_argv("ffmpeg", 4001, 5002, Path("/g/rtmp.jpg"), 2.0, Path("/g/rtmp.level"))

    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "1",
        "-listen", "1", "-i", "rtmp://127.0.0.1:4001/live/stream",
        *OUTPUTS,
    ]  # fmt: skip


def test_srt_listener_argv_reads_its_url_and_key_from_a_script() -> None:
    argv = srt_listener_argv(
        "ffmpeg", Path("/run/s/srt.ffconcat"), 5002, Path("/g/rtmp.jpg"), 2, Path("/g/rtmp.level")
    )

    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "1",
        "-probesize", "200000", "-analyzeduration", "500000",
        "-f", "concat", "-safe", "0", "-protocol_whitelist", "file,srt",
        "-i", "/run/s/srt.ffconcat",
        *OUTPUTS,
    ]  # fmt: skip


def test_last_level_reads_the_newest_line_and_treats_silence_and_staleness(tmp_path: Path) -> None:
    level = tmp_path / "rtmp.level"
    level.write_text(
        "frame:0    pts:0       pts_time:0\nlavfi.astats.Overall.RMS_level=-30.25\n"
        "frame:1    pts:24000   pts_time:0.5\nlavfi.astats.Overall.RMS_level=-21.04\n"
    )
    assert last_level(level) == -21.0
    level.write_text("frame:2    pts:48000   pts_time:1\nlavfi.astats.Overall.RMS_level=-inf\n")
    assert last_level(level) == -99.0
    stale = time.time() - 10
    os.utime(level, (stale, stale))
    assert last_level(level) is None
    assert last_level(tmp_path / "missing.level") is None
