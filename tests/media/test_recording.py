"""Recordings: golden remux argv, naming, and which finished MP4s a session folder lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung
from summitcast.media.recording import (
    Recording,
    iso639_2,
    list_recordings,
    recording_argv,
    recording_name,
)

pytestmark = pytest.mark.unit

SPEC = LadderSpec(
    rungs=(Rung("720p", 1280, 720, 2800), Rung("360p", 640, 360, 800)),
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
)


def test_recording_argv_is_golden() -> None:
    argv = recording_argv("ffmpeg", Path("/hls/s/1"), SPEC, "fr", Path("/hls/s/1/out.part"))
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"],
        *["-i", "/hls/s/1/720p/vod.m3u8", "-i", "/hls/s/1/audio_fr/vod.m3u8"],
        *["-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-metadata:s:a:0", "language=fra"],
        *["-movflags", "+faststart", "-f", "mp4", "/hls/s/1/out.part"],
    ]


@pytest.mark.parametrize(("code", "expected"), [("en", "eng"), ("pt-BR", "por"), ("und", "und")])
def test_iso639_2_three_letters(code: str, expected: str) -> None:
    assert iso639_2(code) == expected


def test_list_recordings_newest_run_only_and_skips_partial(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    folder.mkdir()
    for name in ("en-100.mp4", "fr-100.mp4", "en-200.mp4", "fr-200.mp4", ".de-200.mp4.part"):
        (folder / name).write_bytes(b"x" * 10)
    (folder / "notes.txt").write_text("not a recording")
    assert list_recordings(tmp_path) == [
        Recording("en", recording_name("en", 200), 10),
        Recording("fr", recording_name("fr", 200), 10),
    ]


def test_list_recordings_of_folder_without_any_is_empty(tmp_path: Path) -> None:
    assert list_recordings(tmp_path / "missing") == []
