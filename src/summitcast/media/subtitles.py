"""WebVTT subtitle renditions for HLS, segmented by summitcast rather than by ffmpeg.

The ffmpeg build here cannot segment WebVTT through -var_stream_map (it fails
alone and segfaults beside video; see summitcast.media.ladder), and playout
subtitles arrive per item anyway: each item's .vtt is shifted to where the item
sits in the programme, and the programme's cues are cut into segments of the
same length as the media segments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from summitcast.errors import ValidationError
from summitcast.media.playlist import Segment, render_media_playlist

_TIME_RE = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$")


@dataclass(frozen=True)
class Cue:
    """One subtitle cue in programme seconds."""

    start_s: float
    end_s: float
    text: str


def _parse_time(text: str) -> float:
    """Read a WebVTT timestamp ([hh:]mm:ss.ttt) as seconds."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValidationError(f"bad WebVTT timestamp {text!r}")
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def format_time(seconds: float) -> str:
    """Write seconds as a WebVTT timestamp hh:mm:ss.ttt."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def parse_webvtt(text: str) -> list[Cue]:
    """Read the cues of a WebVTT file (settings, NOTE and STYLE blocks are dropped)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.startswith("WEBVTT"):
        raise ValidationError("a WebVTT file must start with WEBVTT")
    cues = []
    for block in text.split("\n\n")[1:]:
        lines = [line for line in block.split("\n") if line.strip()]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue  # NOTE, STYLE, REGION or stray text
        start, _, rest = lines[timing].partition("-->")
        end = rest.split()[0] if rest.split() else ""
        body = "\n".join(lines[timing + 1 :])
        if body:
            cues.append(Cue(_parse_time(start), _parse_time(end), body))
    return cues


def place_cues(cues: Sequence[Cue], offset_s: float, duration_s: float) -> list[Cue]:
    """Shift an item's cues to its programme offset, cut to the item's duration."""
    placed = []
    for cue in cues:
        start, end = max(0.0, cue.start_s), min(duration_s, cue.end_s)
        if end > start:
            placed.append(Cue(offset_s + start, offset_s + end, cue.text))
    return placed


def segment_text(cues: Sequence[Cue], index: int, segment_s: float, mpegts_base: int) -> str:
    """The WebVTT segment number index: every cue overlapping its time span."""
    begin, end = index * segment_s, (index + 1) * segment_s
    # X-TIMESTAMP-MAP ties LOCAL 0 (programme start) to the media's 90 kHz clock.
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts_base},LOCAL:00:00:00.000", ""]
    for cue in cues:
        if cue.start_s < end and cue.end_s > begin:
            # A cue crossing a boundary is repeated in each segment; players merge it.
            lines += [f"{format_time(cue.start_s)} --> {format_time(cue.end_s)}", cue.text, ""]
    return "\n".join(lines)


def segment_count(total_s: float, segment_s: float) -> int:
    """How many segments cover total_s seconds (the last may be short)."""
    full, rest = divmod(round(total_s * 1000), round(segment_s * 1000))
    return full + (1 if rest else 0)


def segment_name(index: int) -> str:
    """File name of WebVTT segment number index."""
    return f"seg_{index:05d}.vtt"


def media_playlist(
    total_s: float,
    segment_s: int,
    *,
    ended: bool,
    window_segments: int = 0,
    date_of: Callable[[float, float], float | None] | None = None,
) -> str:
    """The subtitle media playlist covering total_s seconds of programme.

    window_segments > 0 lists only the newest segments (the live window, as the
    media renditions do); date_of dates a segment from its programme start and
    duration (``FeedClock.segment_date``), so captions carry the same dates as the
    picture and a player aligns them by date. A whole, ended list is the replay's.
    """
    count = segment_count(total_s, segment_s)
    first = max(0, count - window_segments) if window_segments else 0
    segments = []
    for index in range(first, count):
        start = index * segment_s
        length = min(segment_s, total_s - start)
        date = date_of(start, length) if date_of is not None else None
        segments.append(Segment(index, segment_name(index), length, date))
    return render_media_playlist(
        segments,
        version=6,
        target_s=segment_s,
        ended=ended,
        vod=ended and not window_segments,
    )
