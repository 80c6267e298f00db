"""End to end over HTTP: a producer plays a three-clip session; players read every rendition."""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import av
import httpx
import m3u8
import numpy
import pytest

from tests.e2e.broadcast_server import FFMPEG, ffmpeg_children, running_server

pytestmark = pytest.mark.e2e


def _dominant_hz(url: str, until_s: float) -> float:
    """The loudest frequency of the first until_s seconds of an audio rendition."""
    with av.open(url) as container:
        chunks = []
        for frame in container.decode(audio=0):
            if frame.time is not None and frame.time > until_s:
                break
            chunks.append(frame.to_ndarray()[0])
        rate = container.streams.audio[0].rate
    samples = numpy.concatenate(chunks)
    spectrum = numpy.abs(numpy.fft.rfft(samples))
    return float(numpy.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def _decode(url: str, *output: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", url, *output, "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_broadcast_session_plays_out_and_every_rendition_decodes_over_http(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    began = time.monotonic()
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.wait_for(lambda: b.on_air()["on_air"] == "Closing slate", 30, "the closing slate")
        b.press("end")
        top = f"{b.base}/hls/{b.slug}/{b.session_id}/360p/index.m3u8"
        b.wait_for(lambda: "#EXT-X-ENDLIST" in httpx.get(top).text, 20, "the end of the playlist")
        key = b.client.get(b.control).text.split('id="ingest-key">')[1].split("<")[0]
        master_response = httpx.get(b.master)
        master = m3u8.loads(master_response.text, uri=b.master)
        assert master_response.headers["cache-control"] == "public, max-age=1"
        # Once ended, the master names the whole-session replay lists (vod.m3u8); the
        # live index.m3u8 are three-minute windows, ended for players still on them.
        assert [p.uri for p in master.playlists] == [
            "360p/vod.m3u8",
            "240p/vod.m3u8",
            "audio_low_en/vod.m3u8",
        ]
        assert [(m.type, m.group_id, m.language) for m in master.media] == [
            ("AUDIO", "aud", "en"),
            ("AUDIO", "aud", "fr"),
            ("AUDIO", "aud_low", "en"),
            ("AUDIO", "aud_low", "fr"),
            ("SUBTITLES", "subs", "en"),
        ]
        base = f"{b.base}/hls/{b.slug}/{b.session_id}"
        for rendition in ("360p", "240p", "audio_en", "audio_fr", "audio_low_en", "audio_low_fr"):
            result = _decode(f"{base}/{rendition}/index.m3u8", "-f", "null")
            assert (rendition, result.returncode, result.stderr) == (rendition, 0, "")
        # Item one: floor and English at 440 Hz, the French interpreter at 880 Hz.
        assert round(_dominant_hz(f"{base}/audio_en/index.m3u8", 1.5), -1) == 440
        assert round(_dominant_hz(f"{base}/audio_fr/index.m3u8", 1.5), -1) == 880
        subs = _decode(f"{base}/subs_en/index.m3u8", "-map", "0:s", "-f", "webvtt")
        assert (subs.returncode, subs.stderr) == (0, "")
        assert "Hello" in subs.stdout
        with av.open(f"{base}/360p/index.m3u8") as container:
            times = sorted(
                float(p.pts * p.time_base)
                for p in container.demux(video=0)
                if p.pts is not None and p.time_base is not None
            )
        gaps = {round(b2 - a, 3) for a, b2 in itertools.pairwise(times)}
        assert gaps == {0.1}  # 10 fps, no hole and no overlap across the items
        assert times[-1] - times[0] > 6.0  # three 2 s items and the slates around them
        # The recording: one MP4 per language, listed on the watch page once written.
        watch = f"{b.base}/s/{b.slug}/watch?session={b.session_id}"
        b.wait_for(lambda: httpx.get(watch).text.count("data-recording=") == 2, 20, "the MP4s")
        links = re.findall(r'href="([^"]+)" download hreflang="(\w+)"', httpx.get(watch).text)
        assert [code for _url, code in links] == ["en", "fr"]
        for url, code in links:
            response = httpx.get(f"{b.base}{url}")
            assert response.headers["content-type"] == "video/mp4"
            mp4 = tmp_path / f"recording-{code}.mp4"
            mp4.write_bytes(response.content)
            with av.open(str(mp4)) as container:
                video, audio = container.streams.video[0], container.streams.audio[0]
                assert (video.width, audio.language) == (640, {"en": "eng", "fr": "fra"}[code])
                assert container.duration is not None
                assert abs(container.duration / 1e6 - (times[-1] - times[0])) < 1.0
            assert _decode(str(mp4), "-f", "null").stderr == ""
            expected_hz = {"en": 440, "fr": 880}[code]
            assert round(_dominant_hz(str(mp4), 1.5), -1) == expected_hz
        segment = m3u8.loads(httpx.get(top).text).segments[0].uri
        seg_response = httpx.get(f"{base}/360p/{segment}")
        assert "immutable" in seg_response.headers["cache-control"]
    assert ffmpeg_children() == []
    assert key not in caplog.text
    assert time.monotonic() - began < 60


def test_hls_route_refuses_traversal_and_missing_files(tmp_path: Path) -> None:
    with running_server(tmp_path) as b:
        for path in ("../../summitcast.db", "..%2F..%2Fsummitcast.db", "%2e%2e/x", "nothing.m3u8"):
            response = httpx.get(f"{b.base}/hls/{b.slug}/{b.session_id}/{path}")
            assert (path, response.status_code) == (path, 404)
        assert httpx.get(f"{b.base}/hls/../{b.session_id}/master.m3u8").status_code == 404


def test_broadcast_encoder_killed_comes_back_and_sequence_never_goes_back(tmp_path: Path) -> None:
    with running_server(tmp_path) as b:
        b.press("start-now")
        b.press("hold")  # an endless slate: the kill lands mid-programme
        top = f"{b.base}/hls/{b.slug}/{b.session_id}/360p/index.m3u8"
        b.wait_for(lambda: len(m3u8.loads(httpx.get(top).text).segments) >= 2, 20, "2 segments")
        runtime = b.app.state.broadcasts.runtimes[b.session_id]
        pid = runtime.playout.encoder.health.pid
        seen: list[list[str]] = []
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 2:
            health = runtime.playout.encoder.health
            if health.running and health.pid != pid:
                break
            time.sleep(0.02)
        restarted_in = time.monotonic() - killed
        assert restarted_in < 2
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            playlist = m3u8.loads(httpx.get(top).text)
            seen.append([s.uri for s in playlist.segments])
            time.sleep(0.3)
        for before, after in itertools.pairwise(seen):
            assert after[: len(before)] == before  # nothing renumbered, nothing dropped
        assert len(seen[-1]) > len(seen[0])  # and it kept growing after the kill
        assert runtime.playout.encoder.health.restarts == 1
        b.press("end")
    assert ffmpeg_children() == []
