"""Checks of an uploaded file against its slot and the programme, with verdicts in plain words.

Pure rules: the media layer probes the file and hands in ``MediaFacts``; these
functions say what is wrong in words a speaker acts on ("your video is 11 minutes;
your slot is 8"), and whether the file may go on to normalisation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum

from summitcast.domain.uploads import UploadKind

# A file may run this much past its slot (fades, a breath at the end) before it is refused.
DURATION_GRACE_S = 15.0
DURATION_GRACE_FRACTION = 0.05
# Below this the picture is blown up so much that it looks blurred on a hall's screen.
MIN_GOOD_HEIGHT = 480
MIN_FPS = 15.0
# Integrated loudness below this is near-silence: a muted microphone, or the wrong track.
SILENT_LUFS = -60.0
QUIET_LUFS = -40.0
# Demuxed content must reach this share of the declared duration, else the file is cut off.
COMPLETE_FRACTION = 0.9


class Level(StrEnum):
    """How much a finding matters."""

    OK = "ok"  # a check that passed, said so the speaker knows it was done
    NOTE = "note"  # we fix it ourselves; nothing to do
    WARNING = "warning"  # it will go on air, but the speaker may want to redo it
    PROBLEM = "problem"  # it cannot go on air: upload a new file


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result, in words for the speaker."""

    level: Level
    message: str

    def as_dict(self) -> dict[str, str]:
        """The finding as stored in the uploads table."""
        return {"level": self.level.value, "message": self.message}


@dataclass(frozen=True, slots=True)
class VideoFacts:
    """The first video stream, as stored (before any rotation is applied)."""

    codec: str
    width: int
    height: int
    fps: float
    rotation: int = 0  # degrees clockwise the player must turn the picture
    variable_frame_rate: bool = False
    still_image: bool = False  # a single picture (a JPEG inside, say) rather than motion


@dataclass(frozen=True, slots=True)
class AudioFacts:
    """The first audio stream."""

    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What probing found in an upload."""

    container: str
    duration_s: float
    video: VideoFacts | None = None
    audio: AudioFacts | None = None
    # Seconds of content the demuxer actually reached; less than duration_s when cut off.
    readable_s: float | None = None
    loudness_lufs: float | None = None  # integrated, EBU R128; None when not measured
    unreadable: str = ""  # why the file could not be opened at all ("" when it could)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every finding of a file, and whether it may be normalised and put on air."""

    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> bool:
        """True when no finding is a problem."""
        return not any(f.level is Level.PROBLEM for f in self.findings)

    @property
    def problems(self) -> tuple[str, ...]:
        """The messages of the findings that block the file."""
        return tuple(f.message for f in self.findings if f.level is Level.PROBLEM)


class Unreadable(StrEnum):
    """Why a file could not be read or prepared, as a speaker can act on it."""

    INVALID_DATA = "invalid_data"  # not media we know, or damaged from the start
    CUT_OFF = "cut_off"  # ends before its end: an export or copy that did not finish
    NO_STREAMS = "no_streams"  # a container with neither picture nor sound
    UNSUPPORTED_CODEC = "unsupported_codec"  # picture or sound in a format we cannot decode
    TIMEOUT = "timeout"  # reading it took longer than any sound file should
    OTHER = "other"  # anything else: our side, the disk, a tool that failed


# ffmpeg's and the OS's own words (matched lower-case), first match wins: cut-off files
# often also say "invalid data", so the more telling causes come first.
_CAUSES: tuple[tuple[Unreadable, tuple[str, ...]], ...] = (
    (Unreadable.TIMEOUT, ("timed out", "timeout")),
    (
        Unreadable.CUT_OFF,
        (
            "truncat",  # "truncated", "Truncating packet", our own probe's "truncated"
            "moov atom not found",
            "end of file",
            "premature end",
            "partial file",
            "incomplete frame",
        ),
    ),
    (
        Unreadable.UNSUPPORTED_CODEC,
        (
            "decoder (codec",  # "Decoder (codec none) not found for input stream #0:0"
            "unknown codec",
            "unsupported codec",
            "codec not currently supported",
            "could not find codec parameters",
            "patch welcome",  # ffmpeg's "… is not implemented. Update your FFmpeg …"
            "not implemented",
        ),
    ),
    (
        Unreadable.NO_STREAMS,
        ("does not contain any stream", "matches no streams", "no streams", "no stream"),
    ),
    (
        Unreadable.INVALID_DATA,
        ("invalid data found", "1094995529", "invalid argument", "could not find tag"),
    ),
)

UNREADABLE_WORDS: dict[Unreadable, str] = {
    Unreadable.INVALID_DATA: (
        "We could not read your file: it is not a video or sound format we know, or it is "
        "damaged. Please export your recording again (MP4 works best) and upload the new file."
    ),
    Unreadable.CUT_OFF: (
        "Your file is cut off before its end: the export or the copy may not have finished. "
        "Please export it again, wait until it is complete, and upload the new file."
    ),
    Unreadable.NO_STREAMS: (
        "We found no picture and no sound in your file. Please upload the recording of "
        "your speech itself."
    ),
    Unreadable.UNSUPPORTED_CODEC: (
        "Your file uses a picture or sound format we cannot play. Please export it as MP4 "
        "(H.264 video, AAC sound) and upload it again."
    ),
    Unreadable.TIMEOUT: (
        "Reading your file took far longer than it should; it may be damaged. Please export "
        "it again and upload the new file."
    ),
    Unreadable.OTHER: (
        "We could not prepare your file for the broadcast. The organisers have been told; "
        "you may also try uploading it again."
    ),
}


def unreadable_cause(tool_text: str) -> Unreadable:
    """What a tool's failure text (ffmpeg, PyAV, the OS) means for the speaker's file."""
    text = tool_text.lower()
    for cause, marks in _CAUSES:
        if any(mark in text for mark in marks):
            return cause
    return Unreadable.OTHER


def speaker_reason(tool_text: str) -> str:
    """A plain sentence for a speaker in place of a tool's failure text (never shown to them)."""
    return UNREADABLE_WORDS[unreadable_cause(tool_text)]


def minutes(seconds: float) -> str:
    """A duration as people say it: '8 minutes', '1 minute 30 seconds', '45 seconds'."""
    total = round(seconds)
    mins, secs = divmod(total, 60)
    if mins == 0:
        return f"{secs} second{'s' if secs != 1 else ''}"
    text = f"{mins} minute{'s' if mins != 1 else ''}"
    if secs:
        text += f" {secs} second{'s' if secs != 1 else ''}"
    return text


def slot_limit_s(slot_s: float) -> float:
    """The longest file a slot takes, grace included."""
    return slot_s + max(DURATION_GRACE_S, slot_s * DURATION_GRACE_FRACTION)


def display_size(video: VideoFacts) -> tuple[int, int]:
    """Width and height as seen after rotation (a phone held upright: taller than wide)."""
    if video.rotation % 180 == 90:
        return video.height, video.width
    return video.width, video.height


def check_media(
    facts: MediaFacts,
    *,
    kind: UploadKind,
    slot_s: float,
    programme_size: tuple[int, int],
    programme_fps: int,
) -> Verdict:
    """Judge a probed programme or audio file against its slot and the programme format."""
    if facts.unreadable:
        # The tool's own text stays with the facts (organisers, log); the speaker reads words.
        cause = unreadable_cause(facts.unreadable)
        if cause is Unreadable.OTHER:
            cause = Unreadable.INVALID_DATA  # the file, not our side: it could not be opened
        return Verdict((Finding(Level.PROBLEM, UNREADABLE_WORDS[cause]),))
    if facts.video is None and facts.audio is None:
        return Verdict((Finding(Level.PROBLEM, UNREADABLE_WORDS[Unreadable.NO_STREAMS]),))
    found: list[Finding] = []
    if kind is UploadKind.PROGRAMME:
        found += _check_picture(facts, programme_size, programme_fps)
    found += _check_sound(facts, kind)
    found += _check_duration(facts, slot_s)
    return Verdict(tuple(found))


def _check_picture(
    facts: MediaFacts, programme_size: tuple[int, int], programme_fps: int
) -> list[Finding]:
    video = facts.video
    if video is None:
        return [
            Finding(
                Level.PROBLEM,
                "Your file has sound but no picture. Please upload the video of your speech; "
                "interpretation audio goes under 'Interpretation audio'.",
            )
        ]
    if video.still_image:
        return [
            Finding(
                Level.PROBLEM,
                "Your file holds a single still picture, not a video. "
                "Please upload the recording of your speech.",
            )
        ]
    found: list[Finding] = []
    width, height = display_size(video)
    if video.rotation % 360:
        found.append(
            Finding(
                Level.NOTE,
                f"Your video is stored turned by {video.rotation % 360}°; we turn it upright.",
            )
        )
    if height > width:
        found.append(
            Finding(
                Level.WARNING,
                "Your video is upright (portrait). It will be shown in the middle of a wide "
                "screen with black bars on both sides; film holding the phone sideways to fill it.",
            )
        )
    found.append(_size_finding(width, height, programme_size))
    found += _frame_rate_findings(video, programme_fps)
    return found


def _size_finding(width: int, height: int, programme_size: tuple[int, int]) -> Finding:
    """The picture's size against the broadcast's: too small, scaled down, or fine."""
    target_w, target_h = programme_size
    if min(height, width) < MIN_GOOD_HEIGHT and height < target_h:
        return Finding(
            Level.WARNING,
            f"Your video is {width}×{height}; the broadcast is {target_w}×{target_h}, "
            "so it will look blurred. If you can, export it at a higher resolution.",
        )
    if width > target_w or height > target_h:
        return Finding(
            Level.NOTE,
            f"Your video is {width}×{height}; we scale it to the broadcast's "
            f"{target_w}×{target_h}.",
        )
    return Finding(Level.OK, f"Picture: {width}×{height}.")


def _frame_rate_findings(video: VideoFacts, programme_fps: int) -> list[Finding]:
    """What a variable, low or different frame rate means (nothing when it matches)."""
    if video.variable_frame_rate:
        return [
            Finding(
                Level.NOTE,
                f"Your video has a variable frame rate (common on phones); "
                f"we convert it to a steady {programme_fps} frames per second.",
            )
        ]
    if video.fps and video.fps < MIN_FPS:
        return [
            Finding(
                Level.WARNING,
                f"Your video has only {video.fps:g} frames per second, so movement will look "
                "jerky. Record at 25 or 30 frames per second if you can.",
            )
        ]
    if video.fps and abs(video.fps - programme_fps) > 0.01:
        return [
            Finding(
                Level.NOTE,
                f"Your video runs at {video.fps:g} frames per second; "
                f"we convert it to {programme_fps}.",
            )
        ]
    return []


def _check_sound(facts: MediaFacts, kind: UploadKind) -> list[Finding]:
    audio = facts.audio
    if audio is None:
        what = "video" if kind is UploadKind.PROGRAMME else "file"
        return [
            Finding(
                Level.PROBLEM,
                f"Your {what} has no sound. Check that the microphone was on and that the "
                "export includes audio, then upload it again.",
            )
        ]
    found: list[Finding] = []
    if audio.channels > 2:
        found.append(
            Finding(
                Level.NOTE,
                f"Your sound has {audio.channels} channels ({_layout(audio.channels)}); "
                "we mix it down to stereo.",
            )
        )
    loudness = facts.loudness_lufs
    if loudness is None:
        return found
    if not math.isfinite(loudness) or loudness < SILENT_LUFS:
        found.append(
            Finding(
                Level.PROBLEM,
                "We cannot hear anything in your recording: the sound is silent. "
                "Check the microphone and upload it again.",
            )
        )
    elif loudness < QUIET_LUFS:
        found.append(
            Finding(
                Level.WARNING,
                f"Your sound is very quiet ({loudness:.0f} LUFS). We raise it to broadcast "
                "level, but background noise rises with it: record closer to the microphone.",
            )
        )
    else:
        found.append(
            Finding(
                Level.OK,
                f"Sound: {loudness:.0f} LUFS; we set it to the broadcast level.",
            )
        )
    return found


def _layout(channels: int) -> str:
    return {6: "5.1 surround", 8: "7.1 surround"}.get(channels, "surround")


def _check_duration(facts: MediaFacts, slot_s: float) -> list[Finding]:
    duration = facts.duration_s
    if (
        facts.readable_s is not None
        and duration > 0
        and (facts.readable_s < duration * COMPLETE_FRACTION)
    ):
        return [
            Finding(
                Level.PROBLEM,
                f"Your file is cut off: it should last {minutes(duration)} but only the first "
                f"{minutes(facts.readable_s)} arrived intact. Please upload it again.",
            )
        ]
    if duration <= 0:
        return [
            Finding(
                Level.PROBLEM,
                "Your file has no length we can read; it may be damaged. Please export it again.",
            )
        ]
    if slot_s > 0 and duration > slot_limit_s(slot_s):
        return [
            Finding(
                Level.PROBLEM,
                f"Your video is {minutes(duration)}; your slot is {minutes(slot_s)}. "
                f"Please shorten it to {minutes(slot_s)} or less and upload it again.",
            )
        ]
    return [Finding(Level.OK, f"Length: {minutes(duration)} (your slot: {minutes(slot_s)}).")]


_SRT_TIME = re.compile(r"^\s*\d{1,2}:\d{2}:\d{2}[,.]\d{3}\s*-->\s*\d{1,2}:\d{2}:\d{2}[,.]\d{3}")
_VTT_TIME = re.compile(
    r"^\s*(\d{1,2}:)?\d{2}:\d{2}\.\d{3}\s*-->\s*(\d{1,2}:)?\d{2}:\d{2}\.\d{3}", re.MULTILINE
)


def check_subtitles(data: bytes) -> tuple[Verdict, str | None]:
    """Judge a subtitle file; return the verdict and its text when it is usable UTF-8."""
    raw = data.removeprefix(b"\xef\xbb\xbf")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _subtitle_problem(
            "Your subtitle file is saved as UTF-16. Please save it as UTF-8 "
            "(in most editors: Save as → Encoding: UTF-8) and upload it again."
        ), None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _subtitle_problem(
            "Your subtitle file is not saved as UTF-8 text (at byte "
            f"{exc.start} we found a character in another encoding, such as Windows-1252 or "
            "Latin-1), so accented letters would show as garbage. Please save it as UTF-8 "
            "(Save as → Encoding: UTF-8) and upload it again."
        ), None
    text = text.replace("\r\n", "\n")
    cues = (
        len(_VTT_TIME.findall(text))
        if text.startswith("WEBVTT")
        else sum(1 for line in text.splitlines() if _SRT_TIME.match(line))
    )
    if cues == 0:
        return _subtitle_problem(
            "We found no subtitle timings (like 00:00:01,000 --> 00:00:04,000) in your file. "
            "Please export SRT or WebVTT subtitles."
        ), None
    return Verdict((Finding(Level.OK, f"Subtitles: {cues} cues, UTF-8."),)), text


def _subtitle_problem(message: str) -> Verdict:
    return Verdict((Finding(Level.PROBLEM, message),))
