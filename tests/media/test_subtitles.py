"""WebVTT parsing, placing and segmenting."""

from __future__ import annotations

import pytest

from summitcast.errors import ValidationError
from summitcast.media.subtitles import (
    Cue,
    media_playlist,
    parse_webvtt,
    place_cues,
    segment_count,
    segment_text,
)

VTT = (
    "\ufeffWEBVTT\r\n\r\nNOTE a comment\r\n\r\n1\r\n00:00.500 --> 00:01.500 align:start\r\n"
    "Hello\r\nworld\r\n\r\n00:00:02.000 --> 00:00:09.000\r\nBye\r\n"
)


def test_parse_webvtt_reads_cues_and_skips_notes() -> None:
    assert parse_webvtt(VTT) == [Cue(0.5, 1.5, "Hello\nworld"), Cue(2.0, 9.0, "Bye")]


def test_parse_webvtt_without_header_refused() -> None:
    with pytest.raises(ValidationError):
        parse_webvtt("00:00.000 --> 00:01.000\nx\n")


def test_place_cues_shifts_and_cuts_to_item() -> None:
    assert place_cues(parse_webvtt(VTT), 10.0, 3.0) == [
        Cue(10.5, 11.5, "Hello\nworld"),
        Cue(12.0, 13.0, "Bye"),
    ]


def test_segment_text_repeats_crossing_cue() -> None:
    cues = [Cue(1.5, 2.5, "across"), Cue(5.0, 5.5, "later")]
    assert segment_text(cues, 1, 2, 126000) == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"
        "00:00:01.500 --> 00:00:02.500\nacross\n"
    )
    assert segment_text(cues, 0, 2, 0).endswith("00:00:01.500 --> 00:00:02.500\nacross\n")


def test_segment_count_rounds_up_partial() -> None:
    assert [segment_count(t, 2) for t in (0, 2, 2.001, 7.5)] == [0, 1, 2, 4]


def test_media_playlist_whole_and_ended_is_the_replay_list() -> None:
    assert media_playlist(5.0, 2, ended=True) == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXTINF:2.000000,\nseg_00000.vtt\n#EXTINF:2.000000,\nseg_00001.vtt\n"
        "#EXTINF:1.000000,\nseg_00002.vtt\n#EXT-X-ENDLIST\n"
    )


def test_media_playlist_live_window_lists_newest_segments_dated_by_the_clock() -> None:
    # Programme second s was fed at 1_800_000_000 + s (real pace).
    text = media_playlist(
        10.0, 2, ended=False, window_segments=3, date_of=lambda start, _length: 1.8e9 + start
    )
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n#EXTINF:2.000000,\nseg_00002.vtt\n"
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:06.000Z\n#EXTINF:2.000000,\nseg_00003.vtt\n"
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:08.000Z\n#EXTINF:2.000000,\nseg_00004.vtt\n"
    )
