"""A synthetic live HLS window on disk, shared by the viewer benchmarks (not a benchmark).

Two video rungs sharing an audio group, and an audio-only rung; one segment of a small
fixed size per rendition every segment_s, playlists replaced atomically, old segments
removed a few behind the window, as an encoder's publisher does.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

WINDOW = 6
RENDITIONS = {"720p": (1280, 720), "360p": (640, 360)}
TRACKS = [*RENDITIONS, "audio_en", "audio_only_en"]


def write_master(folder: Path) -> None:
    """Two video rungs sharing an audio group, and an audio-only rung."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7"]
    lines.append(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio_en/index.m3u8"'
    )
    for name, (width, height) in RENDITIONS.items():
        lines.append(
            f'#EXT-X-STREAM-INF:BANDWIDTH={width * 1000},RESOLUTION={width}x{height},AUDIO="aud"'
        )
        lines.append(f"{name}/index.m3u8")
    lines += ['#EXT-X-STREAM-INF:BANDWIDTH=70400,CODECS="mp4a.40.2"', "audio_only_en/index.m3u8"]
    (folder / "master.m3u8").write_text("\n".join(lines) + "\n")


class LiveWriter(threading.Thread):
    """Publishes one segment per rendition every segment_s, playlists replaced atomically."""

    def __init__(self, folder: Path, segment_s: float, segment_bytes: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.segment_s, self.body = folder, segment_s, b"\0" * segment_bytes
        self.stop = threading.Event()
        self.newest = WINDOW - 1
        for name in TRACKS:
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / name / "init.mp4").write_bytes(b"\1" * 100)
        for n in range(WINDOW):
            self.publish(n)

    def publish(self, newest: int) -> None:
        """Write segment ``newest`` of every rendition, then each playlist's new window."""
        first = max(0, newest - WINDOW + 1)
        target = max(1, round(self.segment_s))
        for name in TRACKS:
            folder = self.folder / name
            (folder / f"seg_{newest}.m4s").write_bytes(self.body)
            lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
            lines += [f"#EXT-X-MEDIA-SEQUENCE:{first}", '#EXT-X-MAP:URI="init.mp4"']
            for n in range(first, newest + 1):
                lines += [f"#EXTINF:{self.segment_s:.6f},", f"seg_{n}.m4s"]
            tmp = folder / "index.m3u8.tmp"
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, folder / "index.m3u8")
            with contextlib.suppress(FileNotFoundError):
                (folder / f"seg_{first - 4}.m4s").unlink()
        self.newest = newest

    def run(self) -> None:
        """Publish on the live clock until stopped."""
        began = time.monotonic()
        while not self.stop.wait(
            max(0.0, began + (self.newest - WINDOW + 2) * self.segment_s - time.monotonic())
        ):
            self.publish(self.newest + 1)
