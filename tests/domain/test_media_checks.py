"""Pure checks: verdicts in plain words for the speaker."""

from __future__ import annotations

import pytest

from summitcast.domain.media_checks import (
    AudioFacts,
    Level,
    MediaFacts,
    Unreadable,
    VideoFacts,
    check_media,
    check_subtitles,
    minutes,
    speaker_reason,
    unreadable_cause,
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


# What ffmpeg, PyAV and the OS said about real hostile files (and our own probe's words).
TOOL_TEXTS = {
    "[Errno 1094995529] Invalid data found when processing input": Unreadable.INVALID_DATA,
    "ffmpeg exit code 183: Error opening input file x. | Error opening input files: "
    "Invalid data found when processing input": Unreadable.INVALID_DATA,
    "truncated: its 'mdat' box should end at byte 123791, the file ends at byte 63030; "
    "[Errno 1094995529] Invalid data found when processing input": Unreadable.CUT_OFF,
    "ffmpeg exit code 1: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] moov atom not found": Unreadable.CUT_OFF,
    "ffmpeg exit code 1: Decoder (codec none) not found for input stream #0:0": (
        Unreadable.UNSUPPORTED_CODEC
    ),
    "ffmpeg exit code 1: Output file #0 does not contain any stream": Unreadable.NO_STREAMS,
    "ffmpeg exit code 1: Stream map '0:a:0' matches no streams.": Unreadable.NO_STREAMS,
    "TimeoutExpired: Command '['ffmpeg', '-i', '/data/uploads/ab12']' timed out after 120 "
    "seconds": Unreadable.TIMEOUT,
    "OSError: [Errno 28] No space left on device": Unreadable.OTHER,
}


@pytest.mark.parametrize(("text", "cause"), TOOL_TEXTS.items())
def test_tool_failure_text_is_read_as_its_cause(text: str, cause: Unreadable) -> None:
    assert unreadable_cause(text) is cause


@pytest.mark.parametrize("text", TOOL_TEXTS)
def test_speaker_reason_is_a_plain_sentence_without_tool_text(text: str) -> None:
    reason = speaker_reason(text)

    assert (reason[0].isupper(), reason[-1]) == (True, ".")
    for raw in ("Errno", "[", "ffmpeg", "0x", "/data", "codec none", "mdat", "moov", "#0"):
        assert raw not in reason, (raw, reason)


def test_unreadable_file_gets_plain_words_not_ffmpegs() -> None:
    facts = MediaFacts("", 0.0, unreadable="[Errno 1094995529] Invalid data found when "
                       "processing input")  # fmt: skip

    assert _check(facts) == [
        (
            Level.PROBLEM,
            "We could not read your file: it is not a video or sound format we know, or it is "
            "damaged. Please export your recording again (MP4 works best) and upload the new "
            "file.",
        )
    ]


def test_unknown_open_failure_still_blames_the_file_in_plain_words() -> None:
    facts = MediaFacts("", 0.0, unreadable="[Errno 5] Input/output error")

    assert _check(facts) == [(Level.PROBLEM, speaker_reason("Invalid data found"))]


def test_container_without_any_stream_says_so() -> None:
    found = _check(MediaFacts("mov,mp4,m4a,3gp,3g2,mj2", 0.0, readable_s=0.0))

    assert found == [
        (
            Level.PROBLEM,
            "We found no picture and no sound in your file. Please upload the recording of "
            "your speech itself.",
        )
    ]
