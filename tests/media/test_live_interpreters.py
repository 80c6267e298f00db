"""A live interpreter over a pre-recorded item: their language follows them in and out, mid-item."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import av
import imageio_ffmpeg
import m3u8
import numpy
import pytest

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import SourceKind, StepReason
from summitcast.media.broadcast import SessionPlayout
from summitcast.media.ingest import IngestPorts, SessionIngest, free_port
from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung
from summitcast.media.segment_store import LocalSegmentStore
from tests.e2e.broadcast_server import ffmpeg_children

pytestmark = pytest.mark.e2e

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
KEY = "interpreter-key-0123456789abcdef"
SPEC = LadderSpec(
    rungs=(Rung("144p", 256, 144, 150, 48),),
    fps=10,
    preset="ultrafast",
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
)
ITEM_S = 24


def dominant_hz(path: str, stream: int = 0) -> list[float]:
    """The loudest frequency (rounded to 10 Hz) of each whole second of an audio stream."""
    with av.open(path) as container:
        audio = container.streams.audio[stream]
        rate = audio.rate
        samples = numpy.concatenate([f.to_ndarray()[0] for f in container.decode(audio)])
    found = []
    for at in range(0, len(samples) - rate + 1, rate):
        spectrum = numpy.abs(numpy.fft.rfft(samples[at : at + rate]))
        found.append(round(float(numpy.fft.rfftfreq(rate, 1 / rate)[spectrum.argmax()]), -1))
    return found


def _item(folder: Path) -> tuple[Path, Path]:
    """A 24 s item whose floor is 440 Hz then 550 Hz (from 12 s), and its French file at 880 Hz."""
    clip, french = folder / "item.mp4", folder / "item.fr.m4a"
    floor = f"aevalsrc=0.5*sin(2*PI*if(lt(t\\,12)\\,440\\,550)*t):s=48000:d={ITEM_S}"
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=256x144:rate=10:d={ITEM_S}",
            "-f", "lavfi", "-i", floor,
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac", str(clip),
        ],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"sine=frequency=880:d={ITEM_S}", "-c:a", "aac", str(french),
        ],
        check=True,
    )  # fmt: skip
    return clip, french


def _interpreter(url: str, hz: int, seconds: int) -> subprocess.Popen[bytes]:
    """An interpreter sending sound only over RTMP, in real time."""
    return subprocess.Popen(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"sine=frequency={hz}:duration={seconds}",
            "-c:a", "aac", "-f", "flv", url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_live_interpreter_joins_and_leaves_a_recorded_item_without_a_jump(tmp_path: Path) -> None:
    clip, french = _item(tmp_path)
    ports = IngestPorts(
        rtmp=free_port(),
        srt=free_port(socket.SOCK_DGRAM),
        rtmp_upstream=free_port(),
        rtmp_relay=free_port(socket.SOCK_DGRAM),
        srt_relay=free_port(socket.SOCK_DGRAM),
    )
    store = LocalSegmentStore(tmp_path / "hls")
    cue = Cue(
        1,
        SourceKind.FILE,
        StepReason.ITEM,
        item_id=7,
        position=0,
        duration_s=ITEM_S,
        path=str(clip),
        audio_paths=(("fr", str(french)),),
    )
    labels: list[str] = []
    ended_at: list[float] = []  # programme time when the item ended by itself

    async def scenario() -> tuple[int, int]:
        ingest = SessionIngest(FFMPEG, "127.0.0.1", ports, KEY, audio_only=True)
        await ingest.start()
        finished = asyncio.Event()

        async def on_finished(_cue: Cue) -> None:
            ended_at.append(playout.programme_s)
            finished.set()

        playout = SessionPlayout(
            FFMPEG,
            SPEC,
            store,
            tmp_path / "work",
            on_cue_finished=on_finished,
            interpreters=lambda: (None, ingest.relay_url()),
        )
        await playout.start()
        playout.cue(cue)
        interpreter = None
        try:
            while playout.on_air.source != "file":
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            url = f"rtmp://127.0.0.1:{ports.rtmp}/live/{KEY}"
            interpreter = await asyncio.to_thread(_interpreter, url, 1320, 8)
            deadline = time.monotonic() + ITEM_S + 20
            while not finished.is_set() and time.monotonic() < deadline:
                if not labels or playout.on_air.label != labels[-1]:
                    labels.append(playout.on_air.label)
                await asyncio.sleep(0.2)
            assert finished.is_set(), labels
            restarts = playout.encoder.health.restarts
        finally:
            if interpreter is not None:
                interpreter.kill()
                interpreter.wait()
            await playout.stop()
            await ingest.stop()
        return restarts, len(playout.fallbacks)

    restarts, fallbacks = asyncio.run(scenario())
    assert (restarts, fallbacks) == (0, 0)
    # On air: the item, then the item with the French interpreter, then the item again.
    assert labels == ["item.mp4", "item.mp4 + interpreters fr", "item.mp4"]
    english = dominant_hz(str(tmp_path / "hls" / "audio_en" / "index.m3u8"))
    french_hz = dominant_hz(str(tmp_path / "hls" / "audio_fr" / "index.m3u8"))
    # English hears the floor once through, in order: the item resumed, it never restarted.
    floor = [hz for hz in english if hz in (440, 550)]
    assert floor == sorted(floor), english
    assert (floor.count(440) >= 6, floor.count(550) >= 6) == (True, True), english
    # French: the recorded interpretation, the live interpreter, then the recording again.
    changes = [hz for i, hz in enumerate(french_hz) if i == 0 or french_hz[i - 1] != hz]
    assert [hz for hz in changes if hz in (880, 1320)] == [880, 1320, 880], french_hz
    assert french_hz.count(1320) >= 3, french_hz
    playlist = m3u8.load(str(tmp_path / "hls" / "144p" / "index.m3u8"))
    assert playlist.is_endlist
    assert not any(s.discontinuity for s in playlist.segments)  # one continuous programme
    # The item took its 24 s, not more: each restart went on from where the programme was.
    assert ended_at == [pytest.approx(ITEM_S, abs=0.2)]
    assert ffmpeg_children() == []
