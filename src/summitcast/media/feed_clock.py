"""When each frame of the programme reached the encoder, by the wall clock.

ffmpeg's own ``program_date_time`` stamps segment N with the muxer's start time
plus the durations of segments 0..N-1. That is only right while the feed keeps
exact pace with the wall clock; ours does not (a feeder's start-up, a moment of
load, ``-readrate_catchup`` making up for it), and the stamps ran 1-4.5 s ahead
of the clock (measured). So the playout records here, per chunk it writes into
the encoder's stdin, the programme time fed so far and the wall-clock time, and
the publisher stamps each segment from the time its first frame was fed.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Hashable
from dataclasses import dataclass

_EPSILON = 1e-6  # programme times are sums of frame lengths: absorb float rounding


class FeedClock:
    """Wall-clock time at which each programme frame was handed to the encoder."""

    def __init__(self, fps: int, *, now: Callable[[], float] = time.time) -> None:
        self.frame_s = 1 / fps
        self._now = now
        # One float per frame (8 bytes: 7 MB for 8 hours at 30 fps), so any past
        # segment can be stamped, subtitles and the replay playlist included.
        self._walls = array("d")
        self._run: Hashable | None = None
        # Programme time of the first frame fed to the newest encoder process: a
        # restarted encoder starts its output timeline (and a new run of segments
        # after EXT-X-DISCONTINUITY) there.
        self.run_start_s = 0.0

    @property
    def fed_s(self) -> float:
        """Programme time up to which frames have been fed."""
        return len(self._walls) * self.frame_s

    def fed(self, end_s: float, run: Hashable, wall: float | None = None) -> None:
        """Note that every frame before programme time end_s has reached encoder process run."""
        wall = self._now() if wall is None else wall
        if run != self._run:
            self._run = run
            self.run_start_s = self.fed_s
        frames = math.ceil(end_s / self.frame_s - _EPSILON)
        if frames > len(self._walls):
            self._walls.extend([wall] * (frames - len(self._walls)))

    def wall_at(self, programme_s: float) -> float | None:
        """Wall-clock time at which programme time programme_s was fed (None before any feed)."""
        if not self._walls:
            return None
        frame = max(0, math.floor(programme_s / self.frame_s + _EPSILON))
        frame = min(frame, len(self._walls) - 1)
        # Between frames (audio segments end on AAC frames) and past the newest frame
        # the feed runs at real speed, which is what -re makes it do.
        return self._walls[frame] + (programme_s - frame * self.frame_s)

    def segment_date(self, start_s: float, duration_s: float) -> float | None:
        """The program date-time of a segment: when its first frame was fed, or earlier.

        Fed at real pace (the usual case) that is exactly when its first frame was
        fed, and its date plus duration is when its last frame was. A feeder starting
        up reads its first half second at once (ffmpeg's -readrate_initial_burst) and
        catches up at 1.5x after a stall, so a segment can be fed in less than its
        duration; its date then moves earlier, to when its last frame was fed minus its
        duration, so that the date plus duration is never in the future when a player
        reads it (a latency computed from it is never too low).
        """
        first = self.wall_at(start_s)
        last = self.wall_at(start_s + duration_s)
        if first is None or last is None:
            return None
        return min(first, last - duration_s)


@dataclass(frozen=True)
class SessionClock:
    """The session's clock, shared by redundant encoders: segment N starts at epoch + N·segment_s.

    Both broadcast nodes read the epoch (the session's broadcast start) from the
    database. A node starts its output on a segment boundary of this clock, numbers
    its first segment by it and dates every segment by its number, so segment N has
    the same EXT-X-PROGRAM-DATE-TIME on every node, whenever each node started.
    """

    epoch: float  # seconds since the Unix epoch at which segment 0 starts
    segment_s: int
    first_sequence: int  # this node's first segment

    @classmethod
    def joining(cls, epoch: float, segment_s: int, now: float, lead_s: float) -> SessionClock:
        """The clock of a node starting now: its output begins at least lead_s ahead."""
        first = max(0, math.ceil((now + lead_s - epoch) / segment_s - _EPSILON))
        return cls(epoch, segment_s, first)

    @property
    def start_wall(self) -> float:
        """When this node's programme time 0 is on the session's clock."""
        return self.date_of(self.first_sequence)

    def date_of(self, sequence: int) -> float:
        """The program date-time of segment number sequence."""
        return self.epoch + sequence * self.segment_s

    def wall_at(self, programme_s: float) -> float:
        """The session-clock time of this node's programme time programme_s."""
        return self.start_wall + programme_s
