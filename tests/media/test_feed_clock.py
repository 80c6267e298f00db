"""FeedClock: when each programme frame reached the encoder, and the dates of segments."""

from __future__ import annotations

import pytest

from summitcast.media.feed_clock import FeedClock

pytestmark = pytest.mark.unit


def test_wall_at_is_when_the_chunk_holding_that_frame_was_fed() -> None:
    clock = FeedClock(10)
    assert clock.wall_at(0.0) is None  # nothing fed yet
    clock.fed(0.3, run=1, wall=100.0)  # frames 0.0, 0.1, 0.2
    clock.fed(0.5, run=1, wall=100.25)  # frames 0.3, 0.4
    assert [clock.wall_at(t) for t in (0.0, 0.2, 0.3, 0.4)] == [100.0, 100.0, 100.25, 100.25]
    assert clock.wall_at(0.45) == pytest.approx(100.3)  # between frames: real pace
    assert clock.wall_at(1.4) == pytest.approx(101.25)  # past the newest frame: real pace
    assert clock.fed_s == pytest.approx(0.5)


def test_a_new_encoder_process_starts_a_run_at_the_next_frame_fed() -> None:
    clock = FeedClock(10)
    clock.fed(2.0, run=111, wall=10.0)
    assert clock.run_start_s == 0.0
    clock.fed(3.0, run=111, wall=11.0)
    clock.fed(3.5, run=222, wall=12.0)  # the encoder was restarted (another pid)
    assert clock.run_start_s == pytest.approx(3.0)


def test_segment_date_is_its_first_frame_at_real_pace_and_earlier_in_a_burst() -> None:
    clock = FeedClock(10)
    for frame in range(40):  # four seconds at exactly real pace
        clock.fed((frame + 1) / 10, run=1, wall=1000.0 + frame / 10)
    assert clock.segment_date(2.0, 2.0) == pytest.approx(1002.0)
    burst = FeedClock(10)
    burst.fed(0.5, run=1, wall=50.0)  # a feeder's first half second, read at once
    for frame in range(5, 40):
        burst.fed((frame + 1) / 10, run=1, wall=50.0 + (frame - 5) / 10)
    # Segment [0, 2) was fed from 50.0 to 51.5: dated 49.5 so it ends when fed, not later.
    assert burst.segment_date(0.0, 2.0) == pytest.approx(49.5)
    assert burst.segment_date(2.0, 2.0) == pytest.approx(51.5)
