"""The attendance figures of a summit's report, counted from the stored rows in columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.attendance import (
    OTHER_ROW,
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    AttendanceTally,
    Bucket,
    CountingRule,
    SessionWindow,
    public_countries,
)
from summitcast.errors import ValidationError
from summitcast.services.attendance.queries import counting_rule, session_windows, writer_rows
from summitcast.storage.packed_counts import beats_array, ids_array
from summitcast.storage.tables import Location, PresenceSample, Summit

__all__ = ["AttendanceData", "attendance_data"]

# The report counts every presence of the summit: 57.6 M in the worst case (50,000
# locations in each of 1,152 buckets).  Python objects per presence (a dict merge of the
# writers' rows, a public-id string into AttendanceTally.add_columns) cost 0.8-1.5 µs each,
# 84 s for that case; here each location is one row of integer columns and a bucket adds
# one to the rows present in it (~2 s; the verifier does the same in audit/tally.py).
# What this applies of the counting rule (domain/attendance.py, docs/counting.md): bucket
# membership of sessions (rule 1, from SessionWindow.bucket_starts), "present" (rule 2:
# the writers' heartbeats added up reach min_heartbeats, in `_present_rows`) and each
# session's peak (rule 4, earliest bucket on ties, in `_count_presences`).  Everything else
# (counted for a session, distinct, average time, country tables) is the domain's own
# AttendanceTally.figures, fed per-location totals through AttendanceTally.from_totals.
# tests/services/test_attendance_report_arrays.py checks it against the domain's tally.

_Rows = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _LocationColumns:
    """The summit's locations, one row each, in ascending id order."""

    ids: npt.NDArray[np.int32]
    public_ids: list[str]
    countries: list[str]
    hidden: frozenset[str]  # public ids


@dataclass(frozen=True, slots=True)
class _PresenceTotals:
    """Per location row: present buckets in all sessions and in each; the concurrent timeline."""

    present: _Rows
    session_present: list[_Rows]
    session_peak: list[tuple[int, int | None]]
    timeline: list[tuple[int, int]]  # (bucket start, present) per session bucket, empty too


def _location_columns(db: DbSession, summit: Summit) -> _LocationColumns:
    """Return the summit's locations as columns (one Python object per location, not presence)."""
    ids: list[int] = []
    public_ids: list[str] = []
    countries: list[str] = []
    hidden: set[str] = set()
    query = (
        select(Location.id, Location.public_id, Location.country, Location.privacy_level)
        .where(Location.summit_id == summit.id)
        .order_by(Location.id)
    )
    for location_id, key, where, level in db.execute(query):
        ids.append(location_id)
        public_ids.append(key)
        countries.append(where)
        if level == "hidden":
            hidden.add(key)
    # int32: the packed rows hold ids as int32, so searching them needs no conversion.
    return _LocationColumns(np.array(ids, np.int32), public_ids, countries, frozenset(hidden))


def _present_rows(
    rows: Sequence[tuple[bytes, bytes]], ids: npt.NDArray[np.int32], min_heartbeats: int
) -> npt.NDArray[np.bool_]:
    """Return which location rows are present in one bucket (rule 2), given its writers' rows."""
    found: list[npt.NDArray[np.intp]] = []
    beats: list[npt.NDArray[np.uint32]] = []
    for packed_ids, packed_beats in rows:
        row_ids = ids_array(packed_ids)
        at = np.searchsorted(ids, row_ids)
        # A deleted location's id may linger in a packed row: it has nothing to count.
        known = at < len(ids)
        known[known] = ids[at[known]] == row_ids[known]
        found.append(at[known])
        beats.append(beats_array(packed_beats)[known])
    # Adds up the writers' heartbeats per location (as `queries.bucket_rows` does); float64
    # weights are exact for any count a bucket can hold.
    total = np.bincount(np.concatenate(found), np.concatenate(beats), minlength=len(ids))
    present: npt.NDArray[np.bool_] = total >= min_heartbeats
    return present


def _count_presences(
    db: DbSession,
    summit_id: int,
    ids: npt.NDArray[np.int32],
    windows: Sequence[SessionWindow],
    rule: CountingRule,
) -> _PresenceTotals:
    """Count, per location row, the session buckets it is present in; and each bucket's total."""
    session_starts = [frozenset(w.bucket_starts(rule.bucket_seconds)) for w in windows]
    sessions_of: dict[int, list[int]] = {}
    for index, starts in enumerate(session_starts):
        for start in starts:
            sessions_of.setdefault(start, []).append(index)
    # Every bucket overlapping a session is in the timeline, empty ones too.
    concurrent = dict.fromkeys(sorted(sessions_of), 0)
    present = np.zeros(len(ids), np.int64)
    session_present = [np.zeros(len(ids), np.int64) for _ in windows]
    if concurrent:
        for start, rows in writer_rows(db, summit_id, min(concurrent), max(concurrent)):
            sessions = sessions_of.get(start)
            if sessions is None:
                continue  # outside every session: not part of the figures
            here = _present_rows(rows, ids, rule.min_heartbeats)
            present += here
            for index in sessions:
                session_present[index] += here
            concurrent[start] = int(np.count_nonzero(here))
    timeline = list(concurrent.items())
    session_peak: list[tuple[int, int | None]] = []
    for starts in session_starts:
        peak: tuple[int, int | None] = (0, None)
        for start, n in timeline:
            # Strict ">" over buckets in time order keeps the earliest bucket on ties.
            if n > peak[0] and start in starts:
                peak = (n, start)
        session_peak.append(peak)
    return _PresenceTotals(present, session_present, session_peak, timeline)


def _by_key(counts: _Rows, keys: Sequence[str]) -> dict[str, int]:
    """Return key → count for the rows counted at least once (absent keys stay out)."""
    rows = np.flatnonzero(counts)
    return dict(zip(map(keys.__getitem__, rows.tolist()), counts[rows].tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class AttendanceData:
    """Everything a report shows: public and exact figures, sessions and the 1-minute timeline."""

    summit_title: str
    rule: CountingRule
    windows: list[SessionWindow]
    titles: dict[str, str]
    public: AttendanceFigures  # what publishing would publish (k-suppressed)
    exact: dict[str, int]  # organisers only: counted locations per country, hidden as ZZ
    timeline: list[tuple[int, int]]  # (sample start, locations online) from presence samples


def attendance_data(db: DbSession, summit: Summit, settings: Settings) -> AttendanceData:
    """Compute the summit's attendance figures from attendance_counts and presence samples."""
    rule = counting_rule(settings)
    windows, titles = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to count.")
    locations = _location_columns(db, summit)
    totals = _count_presences(db, summit.id, locations.ids, windows, rule)
    keys = locations.public_ids
    present = _by_key(totals.present, keys)
    session_present = [_by_key(counts, keys) for counts in totals.session_present]
    # Every location present in at least one session bucket, with its country.
    seen = {key: locations.countries[row] for row, key in enumerate(keys) if key in present}

    def figures(country: Mapping[str, str], counting: CountingRule) -> AttendanceFigures:
        tally = AttendanceTally.from_totals(
            windows,
            counting,
            country=country,
            present=present,
            session_present=session_present,
            session_peak=totals.session_peak,
            timeline=totals.timeline,
        )
        return tally.figures()

    public = figures(public_countries([Bucket(0, seen)], locations.hidden, rule.k), rule)
    # Exact figures: every country under its own name (k = 1), hidden hosts still as ZZ.
    exact_country = {
        key: SUPPRESSED_COUNTRY if key in locations.hidden else country
        for key, country in seen.items()
    }
    exact_rule = CountingRule(
        rule.bucket_seconds, rule.min_heartbeats, rule.session_min_percent, k=1
    )
    exact = figures(exact_country, exact_rule)
    samples = db.execute(
        select(PresenceSample.sampled_at, PresenceSample.online_total)
        .where(PresenceSample.summit_id == summit.id)
        .order_by(PresenceSample.sampled_at)
    )
    return AttendanceData(
        summit_title=summit.title,
        rule=rule,
        windows=windows,
        titles=titles,
        public=public,
        # With k = 1 only the hidden hosts are left in "other": name them as such.
        exact={
            SUPPRESSED_COUNTRY if row.country == OTHER_ROW else row.country: row.locations
            for row in exact.countries
        },
        timeline=[(int(at.timestamp()), int(n)) for at, n in samples],
    )
