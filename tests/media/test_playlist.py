"""Media playlists: parsed, rendered as a live window or a replay list."""

from __future__ import annotations

import m3u8
import pytest

from summitcast.errors import ValidationError
from summitcast.media.playlist import (
    Segment,
    format_date,
    parse_media_playlist,
    render_media_playlist,
    target_duration,
)

pytestmark = pytest.mark.unit

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init_360p.mp4"
#EXTINF:2.000000,
seg_00041.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init_360p.mp4"
#EXTINF:1.966667,
seg_00042.m4s
#EXT-X-ENDLIST
"""


def test_parse_reads_sequence_numbers_durations_seams_and_init() -> None:
    parsed = parse_media_playlist(FFMPEG_PLAYLIST)
    assert parsed.segments == (
        Segment(41, "seg_00041.m4s", 2.0, None, False, "init_360p.mp4"),
        Segment(42, "seg_00042.m4s", 1.966667, None, True, "init_360p.mp4"),
    )
    assert (parsed.version, parsed.target_duration_s, parsed.ended) == (7, 2, True)


@pytest.mark.parametrize(
    "text",
    ["", "#EXTINF:2,\nseg.ts\n", "#EXTM3U\nseg.ts\n", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n"],
)
def test_parse_refuses_what_is_not_a_media_playlist(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_media_playlist(text)


def test_live_window_renders_dates_seams_and_discontinuity_sequence() -> None:
    window = [
        Segment(7, "seg_00007.m4s", 2.0, 1_800_000_000.0, False, "init_360p.mp4"),
        Segment(8, "seg_00008.m4s", 2.0, 1_800_000_002.5, True, "init_360p.mp4"),
    ]
    text = render_media_playlist(window, version=7, target_s=2, discontinuity_sequence=3)
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init_360p.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z\n#EXTINF:2.000000,\nseg_00007.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.500Z\n#EXTINF:2.000000,\nseg_00008.m4s\n"
    )
    parsed = m3u8.loads(text)
    assert (parsed.media_sequence, parsed.discontinuity_sequence) == (7, 3)
    assert [s.discontinuity for s in parsed.segments] == [False, True]
    # What we write reads back as written.
    assert parse_media_playlist(text).segments == tuple(window)


def test_discontinuity_sequence_zero_is_left_out() -> None:
    text = render_media_playlist([Segment(4, "a.ts", 2.0)], version=6, target_s=2)
    assert "DISCONTINUITY" not in text  # absent means 0 (RFC 8216 §4.3.3.3)


def test_vod_lists_type_and_end() -> None:
    text = render_media_playlist([Segment(0, "a.ts", 2.0)], version=6, target_s=2, vod=True)
    parsed = m3u8.loads(text)
    assert (parsed.playlist_type, parsed.is_endlist, parsed.media_sequence) == ("vod", True, 0)


def test_target_duration_covers_rounded_segments() -> None:
    segments = [Segment(0, "a", 2.4), Segment(1, "b", 2.0)]
    assert target_duration(2, segments) == 2  # 2.4 rounds to 2
    assert target_duration(2, [*segments, Segment(2, "c", 2.5)]) == 3


def test_format_date_is_utc_with_milliseconds() -> None:
    assert format_date(1_800_000_000.1234) == "2027-01-15T08:00:00.123Z"
