"""Pure checks: verdicts in plain words for the speaker."""

from __future__ import annotations

import pytest

from summitcast.domain.media_checks import (
    AudioFacts,
    Level,
    MediaFacts,
    VideoFacts,
    check_media,
    check_subtitles,
    minutes,
)
from summitcast.domain.uploads import UploadKind

pytestmark = pytest.mark.unit
VIDEO = VideoFacts(codec="h264", width=1920, height=1080, fps=30.0)
AUDIO = AudioFacts(codec="aac", channels=2, sample_rate=48000)


def _check(facts: MediaFacts, slot_s: float = 480) -> list[tuple[Level, str]]:
    verdict = check_media(
        facts, kind=UploadKind.PROGRAMME, slot_s=slot_s, programme_size=(1920, 1080),
        programme_fps=30,
    )  # fmt: skip
    return [(f.level, f.message) for f in verdict.findings]


def test_video_longer_than_its_slot_says_both_lengths() -> None:
    found = _check(MediaFacts("mp4", 660.0, VIDEO, AUDIO, readable_s=660.0))

    assert found[-1] == (
        Level.PROBLEM,
        "Your video is 11 minutes; your slot is 8 minutes. "
        "Please shorten it to 8 minutes or less and upload it again.",
    )


def test_a_few_seconds_over_the_slot_is_fine() -> None:
    found = _check(MediaFacts("mp4", 490.0, VIDEO, AUDIO, readable_s=490.0))

    assert found[-1] == (Level.OK, "Length: 8 minutes 10 seconds (your slot: 8 minutes).")


def test_silent_recording_is_a_problem() -> None:
    found = _check(MediaFacts("mp4", 60.0, VIDEO, AUDIO, readable_s=60.0, loudness_lufs=-99.0))

    assert (Level.PROBLEM, "We cannot hear anything in your recording: the sound is silent. "
            "Check the microphone and upload it again.") in found  # fmt: skip


def test_video_without_sound_is_a_problem() -> None:
    found = _check(MediaFacts("mp4", 60.0, VIDEO, None, readable_s=60.0))

    assert found[1][0] is Level.PROBLEM
    assert found[1][1].startswith("Your video has no sound.")


def test_subtitles_in_utf16_are_refused() -> None:
    verdict, text = check_subtitles("WEBVTT\n".encode("utf-16"))

    assert text is None
    assert verdict.problems[0].startswith("Your subtitle file is saved as UTF-16.")


def test_minutes_reads_like_speech() -> None:
    assert [minutes(s) for s in (45, 60, 90, 480)] == [
        "45 seconds",
        "1 minute",
        "1 minute 30 seconds",
        "8 minutes",
    ]
