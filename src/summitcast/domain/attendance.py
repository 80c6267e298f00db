"""Attendance counting rule: from heartbeats to the figures the organiser publishes.

The rule (also in docs/counting.md; every published figure follows from it):

1. Time is cut into buckets of `bucket_seconds` (default 300 s) aligned to the
   Unix epoch in UTC, so bucket starts are multiples of the length.
2. A location is *present* in a bucket if it sent at least `min_heartbeats`
   (default 3) distinct valid signed heartbeats inside it; a heartbeat at
   exactly the end of a bucket belongs to the next one.  At a 10 s interval a
   bucket holds about 30, so 3 tolerates long network drops but not a single ping.
3. The buckets of a session are those overlapping [start, end).  A location is
   *counted* for a session if it is present in at least one of them and in at
   least `session_min_percent` (default 10) per cent of them.  Not "one bucket":
   sustained presence is what makes inflating counts with fake locations costly;
   10 % is 18 minutes of a three-hour session, so a host on a flaky link counts.
4. Concurrent locations of a bucket = number present; peak = maximum over
   buckets, the earliest bucket on ties (no bucket when everyone is absent).
5. Distinct locations = locations counted in at least one session; distinct
   countries = their different country codes, except the suppressed code "ZZ".
6. Average time watched = present buckets × bucket length summed over the
   counted locations, divided by their number, in whole seconds (floor); per
   session only that session's buckets count.
7. Country tables count counted locations per country; a cell with fewer than
   `k` (default 5) locations, and the "ZZ" cell, is merged into an "other" row
   and `suppressed_cells` says how many cells were merged.

Integers only, so a verifier in any language recomputes the same figures.

This module is the rule's reference.  Two array versions count presences per bucket
over numpy columns (session buckets, rule 1; session peaks, rule 4; the report also
rule 2) and hand per-key totals to `AttendanceTally.from_totals`, so rules 3 and 5-7 are
always this module's code: `summitcast.audit.tally` (the verifier) and
`summitcast.services.attendance._count_presences` (the report).  Tests compare each with
the plain per-key tally: tests/audit/test_tally.py and
tests/services/test_attendance_report_arrays.py.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from summitcast.domain.privacy import PRIVACY_LEVELS, UNDISCLOSED, PrivacyLevel
from summitcast.errors import ValidationError

__all__ = [
    "DEFAULT_RULE",
    "OTHER_ROW",
    "SUPPRESSED_COUNTRY",
    "AttendanceFigures",
    "AttendanceTally",
    "Bucket",
    "CountingRule",
    "CountryRow",
    "LocationHeartbeats",
    "PrivacyLevel",
    "SessionFigures",
    "SessionWindow",
    "bucket_start_of",
    "bucketize",
    "present_locations",
    "public_countries",
    "summarise",
]

# ISO 3166 reserves ZZ for user assignment; CLDR and others use it for "unknown region".
# The same code as domain.privacy.UNDISCLOSED, so presence and the log agree.
SUPPRESSED_COUNTRY = UNDISCLOSED
OTHER_ROW = "other"


@dataclass(frozen=True, slots=True)
class CountingRule:
    """Parameters of the counting rule, published in the log header."""

    bucket_seconds: int = 300
    min_heartbeats: int = 3
    session_min_percent: int = 10
    k: int = 5

    def __post_init__(self) -> None:
        """Refuse parameters that make the rule meaningless."""
        if self.bucket_seconds < 1:
            raise ValidationError("bucket length must be at least 1 second", field="bucket_seconds")
        if self.min_heartbeats < 1:
            raise ValidationError("at least one heartbeat is needed", field="min_heartbeats")
        if not 0 <= self.session_min_percent <= 100:
            raise ValidationError("session share must be 0..100 %", field="session_min_percent")
        if self.k < 1:
            raise ValidationError("k must be at least 1", field="k")


# Frozen, so one shared instance is a safe default argument.
DEFAULT_RULE = CountingRule()


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """A session's time span [start, end), aware datetimes."""

    slug: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        """Refuse naive or empty windows."""
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValidationError(f"session {self.slug!r} needs timezone-aware times")
        if self.end <= self.start:
            raise ValidationError(f"session {self.slug!r} ends before it starts")

    def bucket_starts(self, bucket_seconds: int) -> range:
        """Return the starts (epoch seconds) of the buckets overlapping this session."""
        first = bucket_start_of(self.start, bucket_seconds)
        # ceil keeps a bucket that starts before a fractional end second.
        return range(first, math.ceil(self.end.timestamp()), bucket_seconds)


@dataclass(frozen=True, slots=True)
class LocationHeartbeats:
    """One location's valid signed heartbeats, as the presence service accepted them."""

    location_id: str
    country: str
    privacy: PrivacyLevel
    heartbeats: tuple[datetime, ...]

    def __post_init__(self) -> None:
        """Refuse a privacy level the database would not store (one spelling everywhere)."""
        if self.privacy not in PRIVACY_LEVELS:
            raise ValidationError(
                f"privacy level {self.privacy!r} is not one of {', '.join(PRIVACY_LEVELS)}",
                field="privacy",
            )


@dataclass(frozen=True, slots=True)
class Bucket:
    """The locations present in one bucket: key (id or pseudonym) → country code."""

    start: int
    present: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CountryRow:
    """One row of a country table."""

    country: str
    locations: int


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """Published figures of one session."""

    slug: str
    buckets: int
    counted_locations: int
    peak_concurrent: int
    peak_bucket_start: int | None
    average_seconds_watched: int
    countries: tuple[CountryRow, ...]
    suppressed_cells: int


@dataclass(frozen=True, slots=True)
class AttendanceFigures:
    """Every published attendance figure, recomputable from the attendance log."""

    bucket_seconds: int
    min_heartbeats: int
    session_min_percent: int
    k: int
    buckets: int
    entries: int
    peak_concurrent: int
    peak_bucket_start: int | None
    distinct_locations: int
    distinct_countries: int
    average_seconds_watched: int
    countries: tuple[CountryRow, ...]
    suppressed_cells: int
    sessions: tuple[SessionFigures, ...]
    concurrent: tuple[tuple[int, int], ...]


def bucket_start_of(moment: datetime, bucket_seconds: int) -> int:
    """Return the start (epoch seconds, UTC) of the bucket holding `moment`."""
    if moment.tzinfo is None:
        raise ValidationError(f"naive datetime {moment.isoformat()} has no time zone")
    return math.floor(moment.timestamp() / bucket_seconds) * bucket_seconds


def present_locations(
    heartbeats_by_location: Mapping[str, Iterable[datetime]],
    bucket_start: int,
    rule: CountingRule = DEFAULT_RULE,
) -> frozenset[str]:
    """Return the locations with at least `min_heartbeats` distinct heartbeats in the bucket."""
    if bucket_start % rule.bucket_seconds:
        raise ValidationError(f"bucket start {bucket_start} is not aligned to the bucket length")
    present = set()
    for location_id, heartbeats in heartbeats_by_location.items():
        inside = {t for t in heartbeats if bucket_start_of(t, rule.bucket_seconds) == bucket_start}
        if len(inside) >= rule.min_heartbeats:
            present.add(location_id)
    return frozenset(present)


def _session_bucket_starts(sessions: Sequence[SessionWindow], bucket_seconds: int) -> list[int]:
    """Return the sorted union of the sessions' bucket starts."""
    starts: set[int] = set()
    for session in sessions:
        starts.update(session.bucket_starts(bucket_seconds))
    return sorted(starts)


def bucketize(
    locations: Sequence[LocationHeartbeats],
    sessions: Sequence[SessionWindow],
    rule: CountingRule = DEFAULT_RULE,
) -> list[Bucket]:
    """Return one bucket per bucket overlapping a session, empty ones included, in time order."""
    starts = _session_bucket_starts(sessions, rule.bucket_seconds)
    wanted = set(starts)
    present: dict[int, dict[str, str]] = {start: {} for start in starts}
    seen: set[str] = set()
    for location in locations:
        if location.location_id in seen:
            raise ValidationError(f"location {location.location_id!r} appears twice")
        seen.add(location.location_id)
        # A replayed heartbeat has the same time: count distinct times only.
        per_bucket = Counter(
            bucket_start_of(t, rule.bucket_seconds) for t in set(location.heartbeats)
        )
        for start, count in per_bucket.items():
            if count >= rule.min_heartbeats and start in wanted:
                present[start][location.location_id] = location.country
    return [Bucket(start, present[start]) for start in starts]


def public_countries(buckets: Iterable[Bucket], hidden: frozenset[str], k: int) -> dict[str, str]:
    """Return key → country as it may be published: "ZZ" for hidden keys and rare countries.

    Decided once over all buckets, so a key never shows its country in one bucket
    and hides it in another (which would leak it).
    """
    country_of: dict[str, str] = {}
    for bucket in buckets:
        country_of.update(bucket.present)
    sizes = Counter(country for key, country in country_of.items() if key not in hidden)
    return {
        key: country if key not in hidden and sizes[country] >= k else SUPPRESSED_COUNTRY
        for key, country in country_of.items()
    }


def _country_table(countries: Iterable[str], k: int) -> tuple[tuple[CountryRow, ...], int]:
    """Return the k-suppressed country rows (largest first) and how many cells were merged."""
    sizes = Counter(countries)
    rows = []
    other = 0
    suppressed = 0
    for country, count in sizes.items():
        if country == SUPPRESSED_COUNTRY or count < k:
            other += count
            suppressed += country != SUPPRESSED_COUNTRY
        else:
            rows.append(CountryRow(country, count))
    rows.sort(key=lambda row: (-row.locations, row.country))
    if other:
        rows.append(CountryRow(OTHER_ROW, other))
    return tuple(rows), suppressed


class AttendanceTally:
    """Consumes buckets in time order and produces the figures; memory grows with locations."""

    def __init__(
        self,
        sessions: Sequence[SessionWindow],
        rule: CountingRule = DEFAULT_RULE,
    ) -> None:
        """Prepare per-session counters."""
        self._rule = rule
        self._sessions = tuple(sessions)
        self._session_starts = [
            frozenset(s.bucket_starts(rule.bucket_seconds)) for s in self._sessions
        ]
        self._session_present: list[Counter[str]] = [Counter() for _ in self._sessions]
        self._session_peak: list[tuple[int, int | None]] = [(0, None) for _ in self._sessions]
        self._present_total: Counter[str] = Counter()
        self._country: dict[str, str] = {}
        self._timeline: list[tuple[int, int]] = []
        self._entries = 0

    def add(self, bucket: Bucket) -> None:
        """Count one bucket; buckets must come in strictly increasing time order."""
        self.add_columns(bucket.start, list(bucket.present), list(bucket.present.values()))

    def add_columns(self, start: int, keys: Sequence[str], countries: Sequence[str]) -> None:
        """Count one bucket given as distinct keys and their countries, in time order."""
        if start % self._rule.bucket_seconds:
            raise ValidationError(f"bucket start {start} is not aligned to the bucket length")
        if self._timeline and start <= self._timeline[-1][0]:
            raise ValidationError(
                f"bucket {start} does not come after bucket {self._timeline[-1][0]}"
            )
        country_of = self._country
        # One C-speed pass in the usual case (every key known, same country); only a
        # bucket with new keys or a changed country walks its entries in Python.
        known = list(map(country_of.get, keys))
        if known != list(countries):
            for key, country, was in zip(keys, countries, known, strict=True):
                if was is None:
                    country_of[key] = country
                elif was != country:
                    raise ValidationError(f"{key} is in {was} and in {country}")
        concurrent = len(keys)
        self._timeline.append((start, concurrent))
        self._entries += concurrent
        self._present_total.update(keys)
        for index, starts in enumerate(self._session_starts):
            if start in starts:
                self._session_present[index].update(keys)
                # Strict ">" keeps the earliest bucket on ties, since buckets come in order.
                if concurrent > self._session_peak[index][0]:
                    self._session_peak[index] = (concurrent, start)

    @classmethod
    def from_totals(
        cls,
        sessions: Sequence[SessionWindow],
        rule: CountingRule,
        *,
        country: Mapping[str, str],
        present: Mapping[str, int],
        session_present: Sequence[Mapping[str, int]],
        session_peak: Sequence[tuple[int, int | None]],
        timeline: Sequence[tuple[int, int]],
    ) -> AttendanceTally:
        """Rebuild a tally from totals counted elsewhere (the verifier counts with arrays).

        `present` and `session_present` count present buckets per key, `session_peak`
        is each session's (peak, its earliest bucket) and `timeline` (start, present)
        per bucket.
        """
        tally = cls(sessions, rule)
        tally._country = dict(country)
        tally._present_total = Counter(present)
        tally._session_present = [Counter(counts) for counts in session_present]
        tally._session_peak = list(session_peak)
        tally._timeline = sorted(timeline)
        tally._entries = sum(n for _, n in timeline)
        return tally

    def session_bucket_starts(self) -> list[frozenset[int]]:
        """Return, per session, the starts of its buckets."""
        return list(self._session_starts)

    def merge(self, other: AttendanceTally) -> list[str]:
        """Add another tally of other buckets (same sessions and rule); returns key conflicts.

        Lets worker processes each tally a share of the buckets.  Every bucket must
        have gone into exactly one of the tallies.
        """
        conflicts = []
        country_of = self._country
        for key, country in other._country.items():
            was = country_of.setdefault(key, country)
            if was != country:
                conflicts.append(f"{key} is in {was} and in {country}")
        self._timeline = sorted(self._timeline + other._timeline)
        self._entries += other._entries
        self._present_total.update(other._present_total)
        for index, present in enumerate(other._session_present):
            self._session_present[index].update(present)
            mine, theirs = self._session_peak[index], other._session_peak[index]
            # The higher peak; on a tie the earlier bucket, as adding in time order gives.
            if theirs[0] > mine[0] or (
                theirs[0] == mine[0] > 0
                and theirs[1] is not None
                and mine[1] is not None
                and theirs[1] < mine[1]
            ):
                self._session_peak[index] = theirs
        return conflicts

    def country_by_key(self) -> Mapping[str, str]:
        """Return the country of every key seen so far."""
        return dict(self._country)

    def figures(self) -> AttendanceFigures:
        """Return the figures for everything added so far."""
        rule = self._rule
        session_figures = []
        counted_anywhere: set[str] = set()
        for session, starts, present, (peak, peak_start) in zip(
            self._sessions,
            self._session_starts,
            self._session_present,
            self._session_peak,
            strict=True,
        ):
            # Integer form of "present_buckets / len(starts) >= percent / 100".
            counted = [
                key
                for key, n in present.items()
                if n * 100 >= rule.session_min_percent * len(starts)
            ]
            counted_anywhere.update(counted)
            watched = sum(present[key] for key in counted) * rule.bucket_seconds
            rows, suppressed = _country_table((self._country[key] for key in counted), rule.k)
            session_figures.append(
                SessionFigures(
                    slug=session.slug,
                    buckets=len(starts),
                    counted_locations=len(counted),
                    peak_concurrent=peak,
                    peak_bucket_start=peak_start,
                    average_seconds_watched=watched // len(counted) if counted else 0,
                    countries=rows,
                    suppressed_cells=suppressed,
                )
            )
        peak, peak_start = 0, None
        for start, concurrent in self._timeline:
            if concurrent > peak:
                peak, peak_start = concurrent, start
        countries = [self._country[key] for key in counted_anywhere]
        rows, suppressed = _country_table(countries, rule.k)
        watched = sum(self._present_total[key] for key in counted_anywhere) * rule.bucket_seconds
        return AttendanceFigures(
            bucket_seconds=rule.bucket_seconds,
            min_heartbeats=rule.min_heartbeats,
            session_min_percent=rule.session_min_percent,
            k=rule.k,
            buckets=len(self._timeline),
            entries=self._entries,
            peak_concurrent=peak,
            peak_bucket_start=peak_start,
            distinct_locations=len(counted_anywhere),
            distinct_countries=len(set(countries) - {SUPPRESSED_COUNTRY}),
            average_seconds_watched=watched // len(counted_anywhere) if counted_anywhere else 0,
            countries=rows,
            suppressed_cells=suppressed,
            sessions=tuple(session_figures),
            concurrent=tuple(self._timeline),
        )


def summarise(
    buckets: Iterable[Bucket],
    sessions: Sequence[SessionWindow],
    rule: CountingRule = DEFAULT_RULE,
) -> AttendanceFigures:
    """Return all published figures for buckets in time order (k is `rule.k`)."""
    tally = AttendanceTally(sessions, rule)
    for bucket in buckets:
        tally.add(bucket)
    return tally.figures()
