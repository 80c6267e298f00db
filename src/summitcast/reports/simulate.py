"""A deterministic simulated summit: locations joining and leaving sessions, for demos and tests."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from summitcast.domain.attendance import (
    DEFAULT_RULE,
    Bucket,
    CountingRule,
    LocationHeartbeats,
    SessionWindow,
)
from summitcast.domain.privacy import PrivacyLevel

__all__ = [
    "HEARTBEAT_SECONDS",
    "SimulatedLocation",
    "SimulatedSummit",
    "simulate_attendance",
    "simulate_summit",
]

# The location screen's heartbeat interval (Settings.heartbeat_interval_s default).
HEARTBEAT_SECONDS = 10

# Weighted so that a few countries are large, many small, and some fall under k.
_COUNTRIES = (
    ("US", 14), ("BR", 10), ("IN", 10), ("DE", 8), ("NG", 7), ("FR", 6), ("MX", 6),
    ("ID", 5), ("PH", 5), ("KE", 4), ("JP", 3), ("GB", 3), ("ZA", 3), ("AR", 2),
    ("CA", 2), ("AU", 2), ("EG", 2), ("TR", 2), ("PL", 1), ("SE", 1), ("CL", 1),
    ("PE", 1), ("GH", 1), ("UA", 1), ("IT", 1), ("ES", 1), ("KR", 1), ("IR", 1),
)  # fmt: skip
# Rare countries: a handful of locations each, so k-suppression has work to do.
_RARE = ("IS", "LU", "MT", "BT", "FJ", "MN")


@dataclass(frozen=True, slots=True)
class SimulatedLocation:
    """One watch location: where it is and when it was online (epoch-second intervals)."""

    location_id: str
    country: str
    privacy: PrivacyLevel
    online: tuple[tuple[int, int], ...]

    def heartbeats(self) -> LocationHeartbeats:
        """Return the heartbeats it sent: one every HEARTBEAT_SECONDS while online."""
        beats = tuple(
            datetime.fromtimestamp(t, UTC)
            for join, leave in self.online
            for t in range(join, leave, HEARTBEAT_SECONDS)
        )
        return LocationHeartbeats(self.location_id, self.country, self.privacy, beats)


@dataclass(frozen=True, slots=True)
class SimulatedSummit:
    """Sessions with titles and the locations that watched them."""

    slug: str
    title: str
    sessions: tuple[SessionWindow, ...]
    session_titles: dict[str, str]
    locations: tuple[SimulatedLocation, ...]

    def heartbeats(self) -> list[LocationHeartbeats]:
        """Return every location's heartbeats (fine for thousands of locations, not 50,000)."""
        return [location.heartbeats() for location in self.locations]

    def heartbeat_counts(self, bucket_seconds: int) -> dict[tuple[str, int], int]:
        """Return how many heartbeats each location sent in each bucket it was online in.

        Counts each location's beats per bucket arithmetically, so a summit of
        50,000 locations over four days takes seconds, not minutes.
        """
        size = bucket_seconds
        step = HEARTBEAT_SECONDS
        counts: dict[tuple[str, int], int] = {}
        for location in self.locations:
            for join, leave in location.online:
                first_bucket = join - join % size
                for start in range(first_bucket, leave, size):
                    lo, hi = max(start, join), min(start + size, leave)
                    # Beats fall at join + step*i: count those in [lo, hi).
                    first = join + -(-(lo - join) // step) * step
                    if first < hi:
                        key = (location.location_id, start)
                        counts[key] = counts.get(key, 0) + (hi - first - 1) // step + 1
        return counts

    def buckets(self, rule: CountingRule = DEFAULT_RULE) -> list[Bucket]:
        """Return the same buckets as `bucketize(self.heartbeats(), …)`, without the heartbeats."""
        starts: set[int] = set()
        for session in self.sessions:
            starts.update(session.bucket_starts(rule.bucket_seconds))
        present: dict[int, dict[str, str]] = {start: {} for start in sorted(starts)}
        country = {location.location_id: location.country for location in self.locations}
        for (location_id, start), count in self.heartbeat_counts(rule.bucket_seconds).items():
            if count >= rule.min_heartbeats and start in present:
                present[start][location_id] = country[location_id]
        # Insertion order of each bucket follows the locations, as bucketize gives it.
        order = {location.location_id: i for i, location in enumerate(self.locations)}
        return [
            Bucket(start, dict(sorted(members.items(), key=lambda kv: order[kv[0]])))
            for start, members in present.items()
        ]

    def online_timeline(self, sample_seconds: int = 60) -> list[tuple[int, int]]:
        """Return (sample start, locations online at any time in it) over the whole summit."""
        first = min(s.start for s in self.sessions)
        last = max(s.end for s in self.sessions)
        origin = int(first.timestamp()) // sample_seconds * sample_seconds
        count = -(-(int(last.timestamp()) - origin) // sample_seconds)
        delta = [0] * (count + 1)
        for location in self.locations:
            for join, leave in location.online:
                a = max(0, (join - origin) // sample_seconds)
                b = min(count, -(-(leave - origin) // sample_seconds))
                if a < b:
                    delta[a] += 1
                    delta[b] -= 1
        timeline = []
        online = 0
        for index in range(count):
            online += delta[index]
            timeline.append((origin + index * sample_seconds, online))
        return timeline


def _sessions(
    start: datetime, days: int, per_day: int, minutes: int
) -> tuple[list[SessionWindow], dict[str, str]]:
    sessions = []
    titles = {}
    for day in range(days):
        for n in range(per_day):
            # Sessions every four hours from the start time, so they do not overlap.
            begin = start + timedelta(days=day, hours=4 * n)
            slug = f"d{day + 1}s{n + 1}"
            sessions.append(SessionWindow(slug, begin, begin + timedelta(minutes=minutes)))
            titles[slug] = f"Day {day + 1}, session {n + 1}"
    return sessions, titles


def simulate_summit(
    locations: int,
    *,
    days: int = 1,
    sessions_per_day: int = 3,
    session_minutes: int = 180,
    start: datetime = datetime(2024, 7, 17, 10, 0, tzinfo=UTC),
    seed: int = 20240717,
    title: str = "World Summit (simulated)",
    slug: str = "world-summit-sim",
) -> SimulatedSummit:
    """Return a summit whose locations join and leave each session at random, reproducibly."""
    sessions, titles = _sessions(start, days, sessions_per_day, session_minutes)
    return simulate_attendance(
        sessions, locations, seed=seed, title=title, slug=slug, session_titles=titles
    )


def simulate_attendance(
    sessions: Sequence[SessionWindow],
    locations: int,
    *,
    seed: int = 20240717,
    title: str = "World Summit (simulated)",
    slug: str = "world-summit-sim",
    session_titles: Mapping[str, str] | None = None,
    id_prefix: str = "loc-",
) -> SimulatedSummit:
    """Return locations joining and leaving the given sessions at random, reproducibly."""
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not secrets
    names = [c for c, _ in _COUNTRIES]
    weights = [w for _, w in _COUNTRIES]
    made = []
    for i in range(locations):
        rare = rng.random() < 0.004
        country = rng.choice(_RARE) if rare else rng.choices(names, weights)[0]
        roll = rng.random()
        privacy: PrivacyLevel = "hidden" if roll < 0.03 else "country" if roll < 0.10 else "public"
        online = []
        for session in sessions:
            if rng.random() < 0.25:
                continue  # this location skipped the session
            length = int((session.end - session.start).total_seconds())
            join = int(session.start.timestamp()) + int(length * rng.random() ** 2 * 0.6)
            stay = int(length * (0.05 + rng.random() * 0.95))
            online.append((join, min(join + stay, int(session.end.timestamp()))))
        made.append(SimulatedLocation(f"{id_prefix}{i:06d}", country, privacy, tuple(online)))
    titles = dict(session_titles or {s.slug: s.slug for s in sessions})
    return SimulatedSummit(slug, title, tuple(sessions), titles, tuple(made))
