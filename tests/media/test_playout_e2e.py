"""End to end: three generated clips and slates → one continuous HLS programme (SessionPlayout)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import imageio_ffmpeg
import m3u8
import pytest

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import (
    PlayoutItem,
    PlayoutStep,
    SourceKind,
    StepReason,
    plan_playout,
)
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.media.broadcast import SessionPlayout, play_steps
from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung, SubtitleTrack
from summitcast.media.segment_store import LocalSegmentStore
from summitcast.media.testclips import Tone, make_clip, write_webvtt

pytestmark = pytest.mark.e2e

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FPS = 10
SPEC = LadderSpec(
    rungs=(Rung("240p", 426, 240, 400, 64), Rung("144p", 256, 144, 150, 48)),
    fps=FPS,
    segment_s=2,
    container="fmp4",
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
    subtitles=(SubtitleTrack("en", "English"),),
    preset="ultrafast",
)
START = datetime(2025, 7, 17, 12, 0, tzinfo=UTC)


def _pts(playlist: Path, kind: str) -> list[float]:
    """Presentation times (s) of every packet of the first stream of kind, in order."""
    with av.open(str(playlist)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        times = [
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.pts is not None and p.time_base is not None
        ]
    return sorted(times)


async def _nothing(_cue: Cue) -> None:
    return None


def _playout(
    spec: LadderSpec, store: LocalSegmentStore, work: Path, *, realtime: bool
) -> SessionPlayout:
    """The playout on air, with the spec's subtitle languages."""
    return SessionPlayout(
        FFMPEG,
        spec,
        store,
        work,
        on_cue_finished=_nothing,
        subtitle_languages=tuple(track.code for track in spec.subtitles),
        realtime=realtime,
    )


async def _play(
    steps: list[PlayoutStep],
    spec: LadderSpec,
    store: LocalSegmentStore,
    work: Path,
    *,
    realtime: bool,
) -> SessionPlayout:
    """Play a plan's steps in turn through SessionPlayout; return the playout once ended."""
    playout = _playout(spec, store, work, realtime=realtime)
    await play_steps(playout, steps)
    return playout


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SessionPlayout, float]:
    """Play the test programme once for every test of this module."""
    media = tmp_path_factory.mktemp("media")
    bilingual = make_clip(
        FFMPEG,
        media / "bilingual.mp4",
        width=426,
        height=240,
        fps=FPS,
        tones=(Tone(440, "eng"), Tone(880, "fra")),
        text="Speech one",
    )
    subs = write_webvtt(media / "bilingual.en.vtt", [(0.2, 1.2, "Hello"), (1.2, 2.0, "World")])
    floor_only = make_clip(
        FFMPEG, media / "floor.mp4", width=320, height=240, fps=15, text="Speech two"
    )
    silent = make_clip(
        FFMPEG, media / "silent.ts", width=426, height=240, fps=FPS, tones=(), duration_s=2.5
    )
    items = [
        PlayoutItem(
            1, ItemKind.SPEECH, "One", 2.0, media_path=str(bilingual), subtitle_path=str(subs)
        ),
        PlayoutItem(2, ItemKind.SPEECH, "Two", 2.0, media_path=str(floor_only)),
        PlayoutItem(3, ItemKind.VIDEO, "Three", 2.5, media_path=str(silent)),
        PlayoutItem(
            4, ItemKind.SPEECH, "Four", 2.0, status=ItemStatus.MISSING, speaker_name="Ольга Петрова"
        ),
    ]
    steps = plan_playout(
        items, now=START - timedelta(seconds=2), start=START, session_title="Opening", hold_s=2
    )
    assert [s.source for s in steps] == [
        SourceKind.SLATE,
        *[SourceKind.FILE] * 3,
        SourceKind.SLATE,
        SourceKind.SLATE,
    ]
    assert steps[4].reason is StepReason.FALLBACK_MISSING
    out = tmp_path_factory.mktemp("hls")
    work = tmp_path_factory.mktemp("work")
    began = time.monotonic()
    worker = asyncio.run(_play(steps, SPEC, LocalSegmentStore(out), work, realtime=False))
    return out, worker, time.monotonic() - began


def test_playout_master_lists_rungs_languages_and_subtitles(
    programme: tuple[Path, SessionPlayout, float],
) -> None:
    out, _worker, _took = programme
    master = m3u8.load(str(out / "master.m3u8"))
    # The session has ended, so the master names each rendition's replay list.
    assert [p.uri for p in master.playlists] == [
        "240p/vod.m3u8",
        "144p/vod.m3u8",
        "audio_low_en/vod.m3u8",
    ]
    assert [(m.type, m.group_id, m.language, m.default) for m in master.media] == [
        ("AUDIO", "aud", "en", "YES"),
        ("AUDIO", "aud", "fr", "NO"),
        ("AUDIO", "aud_low", "en", "YES"),
        ("AUDIO", "aud_low", "fr", "NO"),
        ("SUBTITLES", "subs", "en", "NO"),
    ]


@pytest.mark.parametrize(
    "rendition",
    ["240p", "144p", "audio_en", "audio_fr", "audio_low_en", "audio_low_fr", "subs_en"],
)
def test_playout_rendition_decodes_without_errors(
    programme: tuple[Path, SessionPlayout, float], rendition: str
) -> None:
    out, _worker, _took = programme
    playlist = out / rendition / "index.m3u8"
    # The null muxer drops subtitle streams, so WebVTT is decoded back to WebVTT.
    output = ["-map", "0:s", "-f", "webvtt"] if rendition.startswith("subs") else ["-f", "null"]
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(playlist), *output, "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_playout_media_playlists_one_continuous_programme(
    programme: tuple[Path, SessionPlayout, float],
) -> None:
    out, _worker, _took = programme
    live = m3u8.load(str(out / "240p" / "index.m3u8"))
    assert (live.playlist_type, live.is_endlist, live.media_sequence) == (None, True, 0)
    playlist = m3u8.load(str(out / "240p" / "vod.m3u8"))  # the replay: the whole programme
    assert playlist.playlist_type == "vod"
    assert playlist.is_endlist is True
    assert [s.uri for s in playlist.segments] == [s.uri for s in live.segments]  # < 3 minutes
    assert [s.discontinuity for s in playlist.segments] == [False] * len(playlist.segments)
    assert all(s.program_date_time is not None for s in playlist.segments)
    assert round(sum(s.duration for s in playlist.segments), 1) == 12.5


def test_playout_video_timestamps_continuous(
    programme: tuple[Path, SessionPlayout, float],
) -> None:
    out, _worker, _took = programme
    for rung in ("240p", "144p"):
        times = _pts(out / rung / "index.m3u8", "video")
        steps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
        assert (len(times), steps) == (125, {0.1})


def test_playout_audio_timestamps_continuous(
    programme: tuple[Path, SessionPlayout, float],
) -> None:
    out, _worker, _took = programme
    frame_s = 1024 / 48000  # one AAC frame
    for rendition in ("audio_en", "audio_fr", "audio_low_en"):
        times = _pts(out / rendition / "index.m3u8", "audio")
        gaps = {round(b - a, 4) for a, b in itertools.pairwise(times)}
        assert gaps == {round(frame_s, 4)}
        assert abs(times[-1] + frame_s - times[0] - 12.5) < 0.05


def test_playout_subtitles_placed_in_programme(
    programme: tuple[Path, SessionPlayout, float],
) -> None:
    out, _worker, _took = programme
    playlist = m3u8.load(str(out / "subs_en" / "index.m3u8"))
    assert (len(playlist.segments), playlist.is_endlist) == (7, True)
    second = (out / "subs_en" / "seg_00001.vtt").read_text()
    # The bilingual clip starts after the 2 s countdown: its cues move by 2 s.
    assert "00:00:02.200 --> 00:00:03.200\nHello" in second
    assert "00:00:03.200 --> 00:00:04.000\nWorld" in second


def test_playout_runs_faster_than_a_minute(programme: tuple[Path, SessionPlayout, float]) -> None:
    _out, worker, took = programme
    assert (worker.fallbacks, worker.encoder.health.restarts) == ([], 0)
    assert took < 60


def test_playout_unreadable_file_replaced_by_slate(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 1000)
    item = PlayoutItem(1, ItemKind.SPEECH, "Broken", 2.0, media_path=str(bad))
    steps = plan_playout([item], now=START, start=START, session_title="S", hold_s=2)
    spec = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=FPS, preset="ultrafast")
    store = LocalSegmentStore(tmp_path / "hls")
    worker = asyncio.run(_play(steps, spec, store, tmp_path / "work", realtime=False))
    playlist = m3u8.load(str(tmp_path / "hls" / "144p" / "index.m3u8"))
    assert worker.fallbacks == [1]  # the broken item's id
    assert ([s.duration for s in playlist.segments], playlist.is_endlist) == ([2.0, 2.0], True)


def test_playout_encoder_killed_resumes_same_playlists(tmp_path: Path) -> None:
    items = [PlayoutItem(i, ItemKind.SLATE, f"Slate {i}", 3.0) for i in (1, 2)]
    steps = plan_playout(items, now=START, start=START, session_title="S", hold_s=1)
    spec = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=FPS, preset="ultrafast")
    store = LocalSegmentStore(tmp_path / "hls")

    async def scenario() -> SessionPlayout:
        worker = _playout(spec, store, tmp_path / "work", realtime=True)
        playing = asyncio.create_task(play_steps(worker, steps))
        while worker.encoder.health.frame < 15:  # 1.5 s into the programme
            await asyncio.sleep(0.05)
        assert worker.encoder.health.pid is not None
        os.kill(worker.encoder.health.pid, signal.SIGKILL)
        await playing
        return worker

    worker = asyncio.run(scenario())
    playlist_path = tmp_path / "hls" / "144p" / "index.m3u8"
    playlist = m3u8.load(str(playlist_path))
    assert worker.encoder.health.restarts == 1
    assert playlist.is_endlist is True
    # One seam, marked, in the same playlist: numbering continues, nothing restarts.
    assert sum(s.discontinuity for s in playlist.segments) == 1
    assert [s.uri for s in playlist.segments] == [
        f"seg_{i:05d}.m4s" for i in range(len(playlist.segments))
    ]
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(playlist_path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
