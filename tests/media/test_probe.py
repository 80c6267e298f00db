"""Test clips made by the real ffmpeg, read back by probe()."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import pytest

from summitcast.errors import ValidationError
from summitcast.media.probe import AudioInfo, MediaInfo, VideoInfo, probe
from summitcast.media.testclips import Tone, format_vtt_time, make_clip, write_webvtt

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def test_probe_clip_with_two_languages(tmp_path: Path) -> None:
    clip = make_clip(
        FFMPEG,
        tmp_path / "two.mp4",
        tones=(Tone(440, "eng"), Tone(880, "fra")),
        text="Ngozi Okonjo-Iweala: 'ça va', 100% [ok]",
    )
    assert probe(clip) == MediaInfo(
        duration_s=2.0,
        video=VideoInfo(width=320, height=180, fps=15.0, codec="h264"),
        audio=(
            AudioInfo(codec="aac", channels=1, sample_rate=48000, language="eng"),
            AudioInfo(codec="aac", channels=1, sample_rate=48000, language="fra"),
        ),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.mp4"]


def test_probe_silent_ts_clip_has_no_audio(tmp_path: Path) -> None:
    clip = make_clip(FFMPEG, tmp_path / "silent.ts", tones=(), width=160, height=90, fps=10)
    info = probe(clip)
    assert (info.video, info.audio) == (VideoInfo(160, 90, 10.0, "h264"), ())


def test_probe_garbage_raises_validation_error(tmp_path: Path) -> None:
    bad = tmp_path / "upload.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(ValidationError, match=r"^upload\.mp4 is not a readable media file"):
        probe(bad)


def test_probe_missing_file_raises_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        probe(tmp_path / "missing.mp4")


def test_write_webvtt_formats_cues(tmp_path: Path) -> None:
    path = write_webvtt(tmp_path / "s.vtt", [(0.0, 1.5, "Hello"), (61.25, 3723.5, "Bye")])
    assert path.read_text() == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello\n\n00:01:01.250 --> 01:02:03.500\nBye\n"
    )


def test_format_vtt_time_rounds_to_millis() -> None:
    assert format_vtt_time(1.0006) == "00:00:01.001"
