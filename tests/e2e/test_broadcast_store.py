"""End to end with the in-memory segment store: ffmpeg writes locally, players read the store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.e2e.broadcast_server import FFMPEG, ffmpeg_children, running_server

pytestmark = pytest.mark.e2e


def test_session_served_from_memory_store_decodes_over_http(tmp_path: Path) -> None:
    with running_server(tmp_path, segment_store="memory") as b:
        b.press("start-now")
        b.wait_for(lambda: b.on_air()["on_air"] == "Closing slate", 30, "the closing slate")
        b.press("end")
        base = f"{b.base}/hls/{b.slug}/{b.session_id}"
        b.wait_for(
            lambda: "#EXT-X-ENDLIST" in httpx.get(f"{base}/360p/index.m3u8").text, 20, "the end"
        )
        master = m3u8.loads(httpx.get(b.master).text, uri=b.master)
        assert [p.uri for p in master.playlists] == [  # ended: the replay lists
            "360p/vod.m3u8",
            "240p/vod.m3u8",
            "audio_low_en/vod.m3u8",
        ]
        segment = httpx.get(f"{base}/360p/seg_00000.m4s")
        assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
        result = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "error", "-i", b.master,
             "-map", "0:v", "-map", "0:a", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        subtitles = httpx.get(f"{base}/subs_en/index.m3u8")
        assert subtitles.status_code == 200
        assert "#EXT-X-ENDLIST" in subtitles.text
        # Nothing was served from the public segment folder: the store holds it all.
        assert not (b.settings.effective_segment_dir / b.slug / str(b.session_id)).exists()
    assert ffmpeg_children() == []
