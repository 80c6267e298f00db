"""HLS media playlists as summitcast writes them: parsed, windowed, stamped, rendered.

ffmpeg's HLS muxer writes a private playlist per rendition (``.encoder.m3u8``, a
short sliding list without dates); ``summitcast.media.publisher`` reads it and
writes what players read, with this module:

* ``index.m3u8``, the live playlist: the newest ``LadderSpec.window_segments``
  segments (3 minutes by default), each stamped with ``EXT-X-PROGRAM-DATE-TIME``
  from the clock at which its first frame reached the encoder
  (``summitcast.media.feed_clock``), numbered by ``EXT-X-MEDIA-SEQUENCE`` and
  ``EXT-X-DISCONTINUITY-SEQUENCE`` so a player follows it as it slides (RFC 8216
  §6.2.2). Its size stays flat however long the session runs.
* ``vod.m3u8``, written when the session ends: every segment of the session,
  ``EXT-X-PLAYLIST-TYPE:VOD`` and ``EXT-X-ENDLIST``, for replay and recordings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

from summitcast.errors import ValidationError

_URI_RE = re.compile(r'URI="([^"]+)"')


@dataclass(frozen=True)
class Segment:
    """One media segment of a playlist."""

    sequence: int  # its media sequence number, which never changes once listed
    uri: str
    duration_s: float
    # Seconds since the epoch (UTC) at which its first frame reached the encoder.
    program_date_time: float | None = None
    discontinuity: bool = False  # an EXT-X-DISCONTINUITY precedes it (encoder restarted)
    init_uri: str | None = None  # the EXT-X-MAP in force for it (fMP4)


@dataclass(frozen=True)
class MediaPlaylist:
    """What a media playlist says: its header values and segments."""

    segments: tuple[Segment, ...]
    version: int = 3
    target_duration_s: int = 0
    ended: bool = False


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read a media playlist: sequence numbers, durations, dates, seams and init sections."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    if not lines or lines[0] != "#EXTM3U":
        raise ValidationError("a playlist must start with #EXTM3U")
    version, target, sequence, ended = 3, 0, 0, False
    segments: list[Segment] = []
    duration: float | None = None
    date: float | None = None
    discontinuity = False
    init: str | None = None
    for line in lines[1:]:
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-VERSION":
            version = _int(value, line)
        elif tag == "#EXT-X-TARGETDURATION":
            target = _int(value, line)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = _int(value, line)
        elif tag == "#EXT-X-MAP":
            match = _URI_RE.search(value)
            init = match.group(1) if match else None
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            date = _parse_date(value)
        elif tag == "#EXTINF":
            duration = _float(value.split(",", 1)[0], line)
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if duration is None:
                raise ValidationError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(sequence, line, duration, date, discontinuity, init))
            sequence += 1
            duration, date, discontinuity = None, None, False
    return MediaPlaylist(tuple(segments), version, target, ended)


@lru_cache(maxsize=4096)  # a live window re-renders each date ~90 times as it slides
def format_date(epoch_s: float) -> str:
    """An EXT-X-PROGRAM-DATE-TIME value: ISO 8601 in UTC with milliseconds."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def target_duration(segment_s: int, segments: Iterable[Segment]) -> int:
    """The smallest EXT-X-TARGETDURATION that covers every segment (RFC 8216 §4.3.3.1)."""
    # Each EXTINF rounded to the nearest integer must not exceed the target.
    return max([segment_s, *(int(s.duration_s + 0.5) for s in segments)])


def render_media_playlist(
    segments: Sequence[Segment],
    *,
    version: int,
    target_s: int,
    discontinuity_sequence: int = 0,
    ended: bool = False,
    vod: bool = False,
    independent: bool = True,
) -> str:
    """Write a media playlist of segments (a live window, or a whole session with vod=True)."""
    first = segments[0].sequence if segments else 0
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target_s}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    if discontinuity_sequence:
        # Seams that slid out of the window still count, so a player matches the
        # segments of different renditions across them (RFC 8216 §4.3.3.3; absent is 0).
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if vod:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    if independent:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    init: str | None = None
    for segment in segments:
        lines += segment_lines(segment, init)
        init = segment.init_uri
    if ended or vod:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segment_lines(segment: Segment, init_before: str | None) -> list[str]:
    """The lines of one segment; EXT-X-MAP only where the init section changes."""
    lines = []
    if segment.discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if segment.init_uri is not None and segment.init_uri != init_before:
        lines.append(f'#EXT-X-MAP:URI="{segment.init_uri}"')
    if segment.program_date_time is not None:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date(segment.program_date_time)}")
    lines += [f"#EXTINF:{segment.duration_s:.6f},", segment.uri]
    return lines


def stamped(segment: Segment, program_date_time: float) -> Segment:
    """The segment with its program date-time set."""
    return replace(segment, program_date_time=program_date_time)


def _parse_date(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ValidationError(f"bad EXT-X-PROGRAM-DATE-TIME {value!r}") from exc


def _int(value: str, line: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationError(f"bad playlist line {line!r}") from exc


def _float(value: str, line: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise ValidationError(f"bad playlist line {line!r}") from exc
