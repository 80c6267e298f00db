"""Golden tests of a feeder that resumes an item part-way (a live interpreter joined or left)."""

from __future__ import annotations

import pytest

from summitcast.media.playout import FeedSource, feed_argv
from tests.media.test_playout_feed import AUDIO, CATCH_UP, ENCODE, MUX, SPEC, TAIL, VIDEO

pytestmark = pytest.mark.unit

RELAY = "udp://127.0.0.1:50002?timeout=2000000&fifo_size=1000000&overrun_nonfatal=1"


def test_feed_argv_resumed_file_seeks_file_and_interpretation_but_not_interpreter() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/m/a.mp4", audio_tracks=1, language_files=("/m/a.en.m4a", RELAY), seek_s=4.25),
        SPEC,
        offset_s=10.0,
        duration_s=3.75,
        realtime=True,
    )
    graph = ";".join(
        [VIDEO.format(src="0:v:0"), AUDIO.format(src="1:a:0", k=0), AUDIO.format(src="2:a:0", k=1)]
    )
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", *CATCH_UP],
        *["-ss", "4.250", "-i", "/m/a.mp4"],
        *["-re", *CATCH_UP, "-ss", "4.250", "-i", "/m/a.en.m4a"],
        *["-probesize", "200000", "-analyzeduration", "500000", "-i", RELAY],
        *["-filter_complex", graph, *TAIL, "3.750", *ENCODE],
        *["-output_ts_offset", "20.000", *MUX],
    ]


def test_feed_argv_resumed_slate_does_not_seek_the_image() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/w/slate.png", is_image=True, seek_s=5.0),
        SPEC,
        offset_s=0.0,
        duration_s=1.0,
        realtime=True,
    )
    assert "-ss" not in argv
