"""Hostile files through the real probe: plain words for the speaker, tool text kept backstage."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from summitcast.domain.media_checks import UNREADABLE_WORDS, Unreadable, check_media
from summitcast.domain.uploads import UploadKind
from summitcast.media.testclips import make_clip
from summitcast.media.upload_probe import probe_upload

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
INVALID = "[Errno 1094995529] Invalid data found when processing input"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files a speaker might send by mistake or an attacker on purpose."""
    folder = tmp_path_factory.mktemp("hostile")
    clip = make_clip(FFMPEG, folder / "clip.mp4", duration_s=2.0)
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-i", str(clip), "-c", "copy", str(folder / "late.mov")],
        check=True,
        timeout=60,
    )  # the index ('moov') written after the media, as cameras do
    late = (folder / "late.mov").read_bytes()
    files = {
        "garbage": os.urandom(50_000),
        "text": b"This is not a video, just text renamed to .mp4.\n" * 500,
        # A real MP4 head (it passes the first chunk's sniffing), then garbage.
        "mp4-head-garbage": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
        + os.urandom(50_000),
        "cut-before-index": late[: len(late) // 2],
        "cut-inside-index": clip.read_bytes()[:2000],
    }
    for name, data in files.items():
        (folder / f"{name}.mp4").write_bytes(data)
    return {name: folder / f"{name}.mp4" for name in files}


def _problems(path: Path) -> tuple[str, ...]:
    facts = probe_upload(path)
    verdict = check_media(
        facts, kind=UploadKind.PROGRAMME, slot_s=60, programme_size=(320, 180), programme_fps=15
    )
    return verdict.problems


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("garbage", Unreadable.INVALID_DATA),
        ("text", Unreadable.INVALID_DATA),
        ("mp4-head-garbage", Unreadable.INVALID_DATA),
        ("cut-before-index", Unreadable.CUT_OFF),
        ("cut-inside-index", Unreadable.CUT_OFF),
    ],
)
def test_hostile_file_gets_one_plain_reason(
    hostile: dict[str, Path], name: str, cause: Unreadable
) -> None:
    assert _problems(hostile[name]) == (UNREADABLE_WORDS[cause],)


def test_tools_text_is_kept_for_organisers(hostile: dict[str, Path]) -> None:
    assert probe_upload(hostile["garbage"]).unreadable == INVALID
    assert probe_upload(hostile["cut-before-index"]).unreadable == (
        "truncated: its 'mdat' box should end at byte "
        f"{_mdat_end(hostile['cut-before-index'])}, the file ends at byte "
        f"{hostile['cut-before-index'].stat().st_size}; {INVALID}"
    )


def _mdat_end(path: Path) -> int:
    """Where the first 'mdat' box of an ISO media file says it ends."""
    data = path.read_bytes()
    offset = 0
    while data[offset + 4 : offset + 8] != b"mdat":
        offset += int.from_bytes(data[offset : offset + 4], "big")
    return offset + int.from_bytes(data[offset : offset + 4], "big")
