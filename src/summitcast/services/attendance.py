"""Attendance: count accepted heartbeats per bucket, store them, publish the signed public log.

The path of one heartbeat: LiveService accepts it and calls `AttendanceRecorder.count`
(a dictionary increment in this worker's memory); a background task moves closed
buckets into `attendance_counts`: one row per (summit, bucket, writer) holding packed
arrays of location ids and heartbeat counts.  Every worker writes only its own rows,
and readers add the writers' counts up, so nothing contends for a row.
`publish_attendance` turns those rows into the public attendance log
(summitcast.audit.log) and keeps its final signed head.

Keys (decision): each summit's Ed25519 signing key and its audit secret (the HMAC
key of the pseudonyms) are files in ``data_dir/attendance/<slug>/``, created with
mode 0600 in a 0700 folder, never logged and never in the database.  The database
is what gets copied around (backups, replicas, support dumps); a stolen dump must
not let anyone sign a forged log or link pseudonyms to locations.  Encrypting them
in the database with the app's secret key would tie them to that key's rotation.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import compress
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.live import (
    LiveLog,
    LiveLogBusyError,
    PublishedHead,
    read_heads,
    snapshot_of,
)
from summitcast.audit.log import (
    AttendanceLog,
    SignedTreeHead,
    figures_to_dict,
    pseudonym,
    read_log,
    write_attendance_log_from_buckets,
)
from summitcast.audit.log_index import LogIndex, LogIndexBuilder
from summitcast.audit.verify import InclusionProof, inclusion_proof_for, verify_inclusion_proof
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
from summitcast.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from summitcast.storage.tables import (
    AttendanceCounts,
    AttendancePublication,
    Broadcast,
    Location,
    PresenceSample,
    Session,
    Summit,
)

log = logging.getLogger(__name__)

__all__ = [
    "AttendanceData",
    "AttendanceRecorder",
    "HostInclusion",
    "LivePublisher",
    "add_bucket_counts",
    "advance_live_log",
    "attendance_data",
    "check_location_secret",
    "counting_rule",
    "forget_host_data",
    "host_inclusion",
    "latest_publication",
    "live_heads",
    "live_log_is_open",
    "live_log_length",
    "live_log_path",
    "publish_attendance",
    "published_log_path",
    "session_windows",
    "start_live_publishing",
    "store_bucket_counts",
    "stored_counts",
    "summit_keys",
]

_SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_IDS_PER_QUERY = 500
_LITTLE_ENDIAN = sys.byteorder == "little"


def counting_rule(settings: Settings) -> CountingRule:
    """Return the counting rule these settings describe."""
    return CountingRule(
        bucket_seconds=settings.attendance_bucket_s,
        min_heartbeats=settings.attendance_min_heartbeats,
        session_min_percent=settings.attendance_session_min_percent,
        k=settings.k_anonymity,
    )


# --- recording ---------------------------------------------------------------------------


class AttendanceRecorder:
    """Per-worker heartbeat counts per (location, bucket), flushed to the database in batches."""

    def __init__(self, bucket_seconds: int, clock: Callable[[], float] = time.time) -> None:
        """Start with no counts, under a writer id of its own."""
        self.bucket_seconds = bucket_seconds
        # Random, not the pid: pids repeat across hosts and restarts, and a row written
        # by an earlier process must never be read back and rewritten by another.
        self.writer = secrets.token_hex(8)
        self._clock = clock
        self._counts: Counter[tuple[str, int]] = Counter()
        # The periodic flush (in a thread) and the shutdown flush may overlap; this
        # writer's read-add-write of its own rows must not interleave with itself.
        self._writing = threading.Lock()

    def count(self, location_id: str) -> None:
        """Count one accepted heartbeat of a location in the current bucket (O(1), no I/O)."""
        size = self.bucket_seconds
        # Server time, not the token's: a client may skew its clock by minutes.
        self._counts[(location_id, int(self._clock()) // size * size)] += 1

    @property
    def pending(self) -> int:
        """How many (location, bucket) counts wait in memory."""
        return len(self._counts)

    def take(self, *, everything: bool = False) -> Counter[tuple[str, int]]:
        """Remove and return the counts of closed buckets (all counts when `everything`)."""
        if everything:
            taken, self._counts = self._counts, Counter()
            return taken
        open_from = int(self._clock()) // self.bucket_seconds * self.bucket_seconds
        taken = Counter({key: n for key, n in self._counts.items() if key[1] < open_from})
        for key in taken:
            del self._counts[key]
        return taken

    def give_back(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Put counts back after a failed write, so the next flush retries them."""
        self._counts.update(counts)

    async def flush(self, database: Database, *, everything: bool = False) -> int:
        """Write closed buckets (or all) to the database; returns how many counts were added."""
        # Taken in the event loop thread, where `count` runs: no lock is needed.
        counts = self.take(everything=everything)
        if not counts:
            return 0
        try:
            return await asyncio.to_thread(self._write, database, counts)
        except Exception:
            self.give_back(counts)
            raise

    def flush_now(self, database: Database, *, everything: bool = True) -> int:
        """Write counts synchronously (shutdown, tests and tools without an event loop)."""
        counts = self.take(everything=everything)
        if not counts:
            return 0
        try:
            return self._write(database, counts)
        except Exception:
            self.give_back(counts)
            raise

    async def run(self, database: Database, interval_s: float) -> None:
        """Flush closed buckets every interval until cancelled; a failed flush is retried."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush(database)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing attendance buckets failed; retrying")

    def _write(self, database: Database, counts: Mapping[tuple[str, int], int]) -> int:
        with self._writing, database.session() as db:
            return add_bucket_counts(db, counts, writer=self.writer)


def _pack(typecode: str, values: Iterable[int]) -> bytes:
    packed = array(typecode, values)
    if not _LITTLE_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _unpack(typecode: str, data: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


def add_bucket_counts(
    db: DbSession, counts: Mapping[tuple[str, int], int], *, writer: str | None = None
) -> int:
    """Add heartbeat counts keyed by (location public id, bucket start); returns how many.

    Without a writer the counts go into rows of a fresh writer id of their own.
    """
    public_ids = sorted({public_id for public_id, _ in counts})
    rows_of: dict[str, tuple[int, int]] = {}
    for i in range(0, len(public_ids), _IDS_PER_QUERY):
        chunk = public_ids[i : i + _IDS_PER_QUERY]
        query = (
            select(Location.public_id, Location.id, Location.summit_id)
            .join(Summit, Summit.id == Location.summit_id)
            # Simulated heartbeats count only towards a demo summit (the heartbeat path
            # refuses them elsewhere too; this holds for counts from any other source).
            .where(Location.public_id.in_(chunk), or_(~Location.simulated, Summit.is_demo))
        )
        rows_of.update({p: (lid, sid) for p, lid, sid in db.execute(query)})
    grouped: dict[tuple[int, int], dict[int, int]] = {}
    added = 0
    for (public_id, start), n in counts.items():
        found = rows_of.get(public_id)
        if found is None:
            continue  # a location deleted meanwhile has nothing left to count
        location_id, summit_id = found
        grouped.setdefault((summit_id, start), {})[location_id] = n
        added += 1
    who = writer or secrets.token_hex(8)
    for (summit_id, start), bucket in sorted(grouped.items()):
        store_bucket_counts(db, summit_id, start, who, bucket)
    db.flush()
    return added


def store_bucket_counts(
    db: DbSession, summit_id: int, bucket_start: int, writer: str, counts: Mapping[int, int]
) -> None:
    """Add counts (location id → heartbeats) to this writer's row of one bucket."""
    row = db.get(AttendanceCounts, (summit_id, bucket_start, writer))
    merged = dict(counts)
    if row is not None:
        # Only this writer touches its row, so reading and rewriting it cannot race
        # with another worker (the recorder serialises its own flushes).
        old = zip(_unpack("i", row.location_ids), _unpack("I", row.heartbeats), strict=True)
        for location_id, n in old:
            merged[location_id] = merged.get(location_id, 0) + n
    ids = sorted(merged)
    packed_ids, packed_beats = _pack("i", ids), _pack("I", map(merged.__getitem__, ids))
    if row is None:
        db.add(
            AttendanceCounts(
                summit_id=summit_id,
                bucket_start=bucket_start,
                writer=writer,
                location_ids=packed_ids,
                heartbeats=packed_beats,
            )
        )
    else:
        row.location_ids, row.heartbeats = packed_ids, packed_beats


def _bucket_totals(rows: Sequence[tuple[bytes, bytes]]) -> tuple[array[int], array[int]]:
    """Add up the writers' rows of one bucket: (location ids, heartbeats), ids ascending."""
    if len(rows) == 1:
        return _unpack("i", rows[0][0]), _unpack("I", rows[0][1])
    total: dict[int, int] = {}
    for packed_ids, packed_beats in rows:
        ids, beats = _unpack("i", packed_ids), _unpack("I", packed_beats)
        shared = total.keys() & ids
        if not shared:
            # The usual case: each location's connection stays on one worker, so the
            # writers' ids are disjoint and the merge runs at C speed.
            total.update(zip(ids, beats, strict=True))
            continue
        for location_id, n in zip(ids, beats, strict=True):
            total[location_id] = total.get(location_id, 0) + n
    ordered = sorted(total)
    return array("i", ordered), array("I", map(total.__getitem__, ordered))


def _writer_rows(
    db: DbSession, summit_id: int, first: int | None = None, last: int | None = None
) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
    """Yield (bucket start, every writer's packed (ids, heartbeats)) per bucket in time order."""
    query = select(
        AttendanceCounts.bucket_start, AttendanceCounts.location_ids, AttendanceCounts.heartbeats
    ).where(AttendanceCounts.summit_id == summit_id)
    if first is not None:
        query = query.where(AttendanceCounts.bucket_start >= first)
    if last is not None:
        query = query.where(AttendanceCounts.bucket_start <= last)
    # A few rows at a time: each holds up to ~400 kB of arrays at 50,000 locations.
    query = query.order_by(AttendanceCounts.bucket_start).execution_options(yield_per=16)
    current: int | None = None
    pending: list[tuple[bytes, bytes]] = []
    for start, ids, beats in db.execute(query):
        if start != current and pending:
            assert current is not None
            yield current, pending
            pending = []
        current = int(start)
        pending.append((bytes(ids), bytes(beats)))
    if pending:
        assert current is not None
        yield current, pending


def _bucket_rows(
    db: DbSession, summit_id: int, first: int | None = None, last: int | None = None
) -> Iterator[tuple[int, array[int], array[int]]]:
    """Yield (bucket start, location ids, heartbeats) per bucket in time order, writers added."""
    for start, rows in _writer_rows(db, summit_id, first, last):
        yield (start, *_bucket_totals(rows))


def stored_counts(db: DbSession, summit: Summit) -> dict[tuple[int, int], int]:
    """Return every stored count of a summit as (location id, bucket start) → heartbeats."""
    return {
        (location_id, start): n
        for start, ids, beats in _bucket_rows(db, summit.id)
        for location_id, n in zip(ids, beats, strict=True)
    }


# --- figures -----------------------------------------------------------------------------


def session_windows(
    db: DbSession, summit: Summit, *, planned_only: bool = False
) -> tuple[list[SessionWindow], dict[str, str]]:
    """Return each session's window (widened to the broadcast's times) and its title.

    Sessions are named session-1, session-2 … in planned order: short names in the
    public log, and no internal key leaks into it.
    """
    sessions = list(
        db.scalars(
            select(Session)
            .where(Session.summit_id == summit.id)
            .order_by(Session.planned_start, Session.id)
        )
    )
    aired = {
        b.session_id: b
        for b in db.scalars(select(Broadcast).where(Broadcast.summit_id == summit.id))
    }
    windows = []
    titles = {}
    for number, session in enumerate(sessions, start=1):
        start, end = session.planned_start, session.planned_end
        broadcast = None if planned_only else aired.get(session.id)
        # The planned window widened to when the broadcast really ran: hosts who came at
        # the announced time count, and so do those who stayed for an overrun.
        if broadcast is not None and broadcast.started_at is not None:
            start = min(start, broadcast.started_at)
            if broadcast.ended_at is not None:
                end = max(end, broadcast.ended_at)
            elif broadcast.started_at >= end:
                end = broadcast.started_at + timedelta(hours=1)  # still on air, late
        slug = f"session-{number}"
        windows.append(SessionWindow(slug, start, end))
        titles[slug] = session.title
    return windows, titles


class _Buckets(Sequence[Bucket]):
    """Counted buckets, each made into a `Bucket` (public id → country) only when asked for."""

    def __init__(
        self,
        present: list[tuple[int, array[int]]],
        public_id: Mapping[int, str],
        country: Mapping[int, str],
    ) -> None:
        """Keep the compact form: per bucket an array of present location ids."""
        self._present = present
        self._public_id = public_id
        self._country = country

    def __len__(self) -> int:
        """Return how many buckets there are."""
        return len(self._present)

    @overload
    def __getitem__(self, index: int) -> Bucket: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Bucket]: ...

    def __getitem__(self, index: int | slice) -> Bucket | Sequence[Bucket]:
        """Return one bucket (or a slice of them) with its present locations."""
        if isinstance(index, slice):
            return _Buckets(self._present[index], self._public_id, self._country)
        start, ids = self._present[index]
        keys = map(self._public_id.__getitem__, ids)
        return Bucket(start, dict(zip(keys, map(self._country.__getitem__, ids), strict=True)))


@dataclass(frozen=True, slots=True)
class _Counted:
    """Per bucket the present location ids, what they are called, and who is hidden.

    Kept as int32 arrays (4 bytes a presence) instead of a dict per bucket: 50,000
    locations in ~430 session buckets would take gigabytes as dictionaries.
    """

    present: list[tuple[int, array[int]]]
    public_id: dict[int, str]
    country: dict[int, str]
    hidden: frozenset[str]  # public ids

    @property
    def buckets(self) -> _Buckets:
        """Return the buckets keyed by public id, built one at a time."""
        return _Buckets(self.present, self.public_id, self.country)

    def seen(self) -> Bucket:
        """Return one pseudo-bucket of every location present at least once."""
        seen: set[int] = set()
        for _, ids in self.present:
            seen.update(ids)
        return Bucket(0, {self.public_id[i]: self.country[i] for i in sorted(seen)})


def _present_buckets(
    db: DbSession, summit: Summit, windows: Sequence[SessionWindow], rule: CountingRule
) -> _Counted:
    """Return every bucket overlapping a session (empty ones too) with its present locations."""
    starts: set[int] = set()
    for window in windows:
        starts.update(window.bucket_starts(rule.bucket_seconds))
    present: dict[int, array[int]] = {start: array("i") for start in sorted(starts)}
    public_id: dict[int, str] = {}
    country: dict[int, str] = {}
    hidden: set[str] = set()
    for location_id, key, where, level in db.execute(
        select(Location.id, Location.public_id, Location.country, Location.privacy_level).where(
            Location.summit_id == summit.id
        )
    ):
        public_id[location_id] = key
        country[location_id] = where
        if level == "hidden":
            hidden.add(key)
    floor = rule.min_heartbeats
    if present:
        for start, ids, beats in _bucket_rows(db, summit.id, min(present), max(present)):
            members = present.get(start)
            if members is None:
                continue  # outside every session: not part of the published figures
            # C-speed filter: the ids whose heartbeats reach the rule's minimum.
            enough = compress(ids, map(floor.__le__, beats))
            # A deleted location's id may linger in a packed row: it has nothing to count.
            members.extend(i for i in enough if i in public_id)
    return _Counted(list(present.items()), public_id, country, frozenset(hidden))


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
        row_ids = np.frombuffer(packed_ids, "<i4")
        at = np.searchsorted(ids, row_ids)
        # A deleted location's id may linger in a packed row: it has nothing to count.
        known = at < len(ids)
        known[known] = ids[at[known]] == row_ids[known]
        found.append(at[known])
        beats.append(np.frombuffer(packed_beats, "<u4")[known])
    # Adds up the writers' heartbeats per location (as `_bucket_totals` does); float64
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
        for start, rows in _writer_rows(db, summit_id, min(concurrent), max(concurrent)):
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


# --- keys and publication ----------------------------------------------------------------


def _summit_dir(settings: Settings, summit: Summit) -> Path:
    if not _SAFE_SLUG.fullmatch(summit.slug):
        raise ValidationError(f"summit slug {summit.slug!r} cannot name a folder")
    folder = settings.attendance_dir / summit.slug
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _private_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Return a secret file's bytes, creating it with mode 0600 if it does not exist."""
    try:
        # O_EXCL: two workers publishing at once never both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(make())
    return path.read_bytes()


def summit_keys(settings: Settings, summit: Summit) -> tuple[Ed25519PrivateKey, bytes]:
    """Return the summit's Ed25519 signing key and audit secret, created on first use."""
    folder = _summit_dir(settings, summit)
    pem = _private_file(
        folder / "signing-key.pem",
        lambda: Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError("the summit's signing key is not an Ed25519 key")
    secret = _private_file(folder / "audit-secret", lambda: os.urandom(32))
    return key, secret


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """Return the raw public key in base64, as the log header and `audit verify` spell it."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def latest_publication(db: DbSession, summit: Summit) -> AttendancePublication | None:
    """Return the summit's newest publication, or None."""
    return db.scalar(
        select(AttendancePublication)
        .where(AttendancePublication.summit_id == summit.id)
        .order_by(AttendancePublication.id.desc())
        .limit(1)
    )


def published_log_path(
    settings: Settings, summit: Summit, publication: AttendancePublication
) -> Path:
    """Return where a publication's log file lives."""
    return settings.attendance_dir / summit.slug / publication.log_file


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks (a 4-day log is ~3.7 GB)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def publish_attendance(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> AttendancePublication:
    """Write the signed public log of the summit's counted buckets and store its final head.

    When the summit's log is live, it is finished instead: the remaining buckets
    are appended and the figures record signs them, so every head published during
    the event stays a prefix of the published log.
    """
    live = live_log_path(settings, summit)
    if live is not None and not _live_finished(live):
        return _finish_live_log(db, summit, settings, live, clock)
    rule = counting_rule(settings)
    windows, _ = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to publish.")
    counted = _present_buckets(db, summit, windows, rule)
    key, secret = summit_keys(settings, summit)
    folder = _summit_dir(settings, summit)
    now = clock()
    name = f"attendance-log-{now.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
    partial = folder / f".partial-{name}"
    index = LogIndexBuilder()
    with partial.open("w", encoding="utf-8") as out:
        figures, head = write_attendance_log_from_buckets(
            out,
            summit=summit.slug,
            buckets=counted.buckets,
            hidden=counted.hidden,
            country=public_countries([counted.seen()], counted.hidden, rule.k),
            observer=index,
            sessions=windows,
            rule=rule,
            audit_secret=secret,
            signing_key=key,
            clock=clock,
        )
    # Renamed only when whole: a reader never sees half a log (nor half an index).
    partial_index = folder / f".partial-{name}.index"
    index.write(partial_index, head)
    path = folder / name
    partial_index.rename(_index_path(path))
    partial.rename(path)
    return _record_publication(db, summit, now, path, head, key, figures)


def _record_publication(
    db: DbSession,
    summit: Summit,
    now: datetime,
    path: Path,
    head: SignedTreeHead,
    key: Ed25519PrivateKey,
    figures: AttendanceFigures,
) -> AttendancePublication:
    """Store a finished log's publication: its file, digest, final head, key and figures."""
    publication = AttendancePublication(
        summit_id=summit.id,
        published_at=now,
        log_file=path.name,
        log_sha256=_file_sha256(path),
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        public_key=public_key_b64(key),
        figures=figures_to_dict(figures),
    )
    db.add(publication)
    db.flush()
    return publication


# --- live publication --------------------------------------------------------------------

_LIVE_POINTER = "live.json"  # in the summit's folder: which log is the live one


def live_log_path(settings: Settings, summit: Summit) -> Path | None:
    """Return the summit's live log, or None when live publishing was never started."""
    pointer = settings.attendance_dir / summit.slug / _LIVE_POINTER
    try:
        name = json.loads(pointer.read_bytes())["log_file"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("%s is unreadable: treated as no live log", pointer)
        return None
    path = pointer.with_name(str(name))
    # A log or snapshot removed by hand (or a half-copied folder) is no live log either.
    if not path.is_file() or not path.with_name(path.name + ".state").is_file():
        return None
    return path


def _live_finished(path: Path) -> bool:
    return snapshot_of(path)[1]


def live_log_is_open(settings: Settings, summit: Summit) -> bool:
    """Return whether the summit's log is being published live (started, not finished)."""
    path = live_log_path(settings, summit)
    return path is not None and not _live_finished(path)


def live_heads(settings: Settings, summit: Summit) -> list[PublishedHead]:
    """Return every head the summit's live log has signed so far (oldest first)."""
    path = live_log_path(settings, summit)
    return [] if path is None else read_heads(path)


def live_log_length(path: Path) -> int:
    """Return how many bytes of a live log its last head covers (what may be served)."""
    return snapshot_of(path)[0]


def start_live_publishing(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> PublishedHead:
    """Start the summit's live log: its closed buckets so far and a first signed head.

    From then on `advance_live_log` (a background task of the app) appends each
    closed bucket and signs a new head every `attendance_head_interval_s`.
    """
    windows, _ = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to publish.")
    current = live_log_path(settings, summit)
    if current is not None and not _live_finished(current):
        raise ConflictError("Live publishing is already on for this summit.")
    key, _ = summit_keys(settings, summit)
    folder = _summit_dir(settings, summit)
    now = clock()
    path = folder / f"attendance-live-{now.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
    LiveLog.create(
        path,
        summit=summit.slug,
        rule=counting_rule(settings),
        sessions=windows,
        signing_key=key,
        created=now,
    )
    pointer = folder / _LIVE_POINTER
    partial = folder / f".{_LIVE_POINTER}.partial"
    partial.write_text(json.dumps({"log_file": path.name}), encoding="utf-8")
    partial.replace(pointer)
    head = advance_live_log(db, summit, settings, clock=clock)
    assert head is not None  # just created, so not finished
    return head


def advance_live_log(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
    min_interval_s: float = 0.0,
) -> PublishedHead | None:
    """Append the live log's newly closed buckets and sign a head (None when not live).

    No head is signed when the last one is younger than `min_interval_s`: every
    worker runs the task, and only the first in each interval should sign.
    Raises LiveLogBusyError when another worker is doing it right now.
    """
    path = live_log_path(settings, summit)
    if path is None:
        return None
    key, secret = summit_keys(settings, summit)
    with LiveLog.locked(path):
        live = LiveLog.open(path)
        now = clock()
        if live.finished:
            return None
        if live.heads and now - live.heads[-1].head.timestamp < timedelta(seconds=min_interval_s):
            return None
        _append_closed_buckets(db, summit, settings, live, secret, now, everything=False)
        return live.sign_head(key, clock)


def _append_closed_buckets(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    live: LiveLog,
    secret: bytes,
    now: datetime,
    *,
    everything: bool,
) -> None:
    """Append every bucket of the log's sessions after its last one that has closed (or all)."""
    rule = live.rule
    starts: set[int] = set()
    for window in live.header.sessions:
        starts.update(window.bucket_starts(rule.bucket_seconds))
    # Other workers flush a closed bucket within one flush interval: wait two.
    grace = 2 * settings.attendance_flush_interval_s
    closed_before = now.timestamp() - grace
    wanted = sorted(
        start
        for start in starts
        if (live.last_start is None or start > live.last_start)
        and (everything or start + rule.bucket_seconds <= closed_before)
    )
    if not wanted:
        return
    present: dict[int, list[int]] = {start: [] for start in wanted}
    for start, ids, beats in _bucket_rows(db, summit.id, wanted[0], wanted[-1]):
        if start in present:
            present[start] = list(compress(ids, map(rule.min_heartbeats.__le__, beats)))
    name: dict[int, str] = {}
    country: dict[str, str] = {}
    for location_id, public_id, where, level in db.execute(
        select(Location.id, Location.public_id, Location.country, Location.privacy_level).where(
            Location.summit_id == summit.id
        )
    ):
        alias = pseudonym(secret, public_id)
        name[location_id] = alias
        country[alias] = SUPPRESSED_COUNTRY if level == "hidden" else where
    # Decided once for everything this round appends: newcomers of a country arriving
    # together may show it (k of them), and each keeps what it was first logged as.
    arriving = {name[i]: country[name[i]] for ids in present.values() for i in ids if i in name}
    logged = live.decide_countries(arriving)
    for start in wanted:
        aliases = [name[i] for i in present[start] if i in name]
        live.append_bucket(start, {alias: logged[alias] for alias in aliases})


def _finish_live_log(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    path: Path,
    clock: Callable[[], datetime],
) -> AttendancePublication:
    """Append the remaining buckets of a live log, sign its figures, index it, record it."""
    key, secret = summit_keys(settings, summit)
    now = clock()
    with LiveLog.locked(path):
        live = LiveLog.open(path)
        _append_closed_buckets(db, summit, settings, live, secret, now, everything=True)
        # Read back from the file: the figures are those of the entries as logged.
        index = LogIndexBuilder()
        figures = live.replay(index)
        head = live.finish(figures, key, clock)
    partial_index = path.with_name(f".partial-{path.name}.index")
    index.write(partial_index, head)
    partial_index.rename(_index_path(path))
    return _record_publication(db, summit, now, path, head, key, figures)


class LivePublisher:
    """The app's background task: advances every live log at the head interval."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Advance the live logs of this data folder against this database."""
        self._settings = settings
        self._database = database
        self._clock = clock

    def live_slugs(self) -> list[str]:
        """Return the slugs of summits whose live log is not finished."""
        slugs = []
        for pointer in sorted(self._settings.attendance_dir.glob(f"*/{_LIVE_POINTER}")):
            try:
                name = json.loads(pointer.read_bytes())["log_file"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s is unreadable: treated as no live log", pointer)
                continue
            path = pointer.with_name(str(name))
            if path.with_name(path.name + ".state").is_file() and not _live_finished(path):
                slugs.append(pointer.parent.name)
        return slugs

    def tick(self) -> int:
        """Advance every live log once; returns how many got a new head."""
        signed = 0
        for slug in self.live_slugs():
            try:
                with self._database.session() as db:
                    summit = db.scalar(select(Summit).where(Summit.slug == slug))
                    if summit is None:
                        continue  # the summit was deleted; its files stay for the record
                    # Half an interval: workers' timers drift apart, yet one head per round.
                    soonest = self._settings.attendance_head_interval_s / 2
                    head = advance_live_log(
                        db, summit, self._settings, clock=self._clock, min_interval_s=soonest
                    )
                    signed += head is not None
            except LiveLogBusyError:
                continue  # another worker is on it this round
            except Exception:
                log.exception("advancing a live attendance log failed; retrying next round")
        return signed

    async def run(self, interval_s: float) -> None:
        """Advance the live logs every interval until cancelled; a failed round is retried."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("advancing the live attendance logs failed; retrying next round")


# --- hosts -------------------------------------------------------------------------------


def check_location_secret(settings: Settings, location: Location, secret: str) -> None:
    """Refuse unless `secret` is the location's own secret (constant-time comparison)."""
    if not LinkSecrets.of(settings).matches(location, secret):
        raise PermissionDeniedError("This is not the secret of this location's link.")


@dataclass(frozen=True, slots=True)
class HostInclusion:
    """What a host learns about their own location in the published log."""

    published: bool
    pseudonym: str
    country: str  # as the log shows it ("ZZ" when suppressed or hidden)
    buckets: list[int]
    proof: dict[str, Any] | None  # proof of the first bucket, with the signed head
    proof_ok: bool
    message: str
    root_hash: str
    public_key: str


def _index_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".index")


def _buckets_of(log_file: AttendanceLog, name: str) -> Iterator[tuple[int, str]]:
    for bucket in log_file.buckets:
        names = [e.pseudonym for e in bucket.entries]
        at = bisect.bisect_left(names, name)
        if at < len(names) and names[at] == name:
            yield bucket.bucket_start, bucket.entries[at].country


def host_inclusion(
    db: DbSession,
    settings: Settings,
    location: Location,
    secret: str,
    *,
    bucket_start: int | None = None,
) -> HostInclusion:
    """Tell a host (proved by their secret) in which published buckets their location counted."""
    check_location_secret(settings, location, secret)
    summit = location.summit
    publication = latest_publication(db, summit)
    if publication is None:
        return HostInclusion(False, "", "", [], None, False, "Nothing is published yet.", "", "")
    _, audit_secret = summit_keys(settings, summit)
    name = pseudonym(audit_secret, location.public_id)
    path = published_log_path(settings, summit, publication)
    index_path = _index_path(path)
    if index_path.exists():
        # The index answers with a B-tree lookup and a few bucket lines: a 4-day
        # log is gigabytes, too much to read on every visit of the page.
        proof_of = _indexed_proof(LogIndex(index_path, path), name, publication, bucket_start)
    else:
        proof_of = _proof_from_whole_log(read_log(path), name, bucket_start)
    if proof_of is None:
        return HostInclusion(
            True,
            name,
            "",
            [],
            None,
            False,
            "Your location is not in the published log: it was not present in any bucket "
            "(at least the rule's heartbeats in 5 minutes) during a session.",
            publication.root_hash,
            publication.public_key,
        )
    starts, country, proof, head = proof_of
    # Checked against the head stored at publication, not only the file's own head.
    check = verify_inclusion_proof(name, proof, head, base64.b64decode(publication.public_key))
    ok = check.ok and head.root_hash.hex() == publication.root_hash
    return HostInclusion(
        True,
        name,
        country,
        starts,
        {"proof": proof.to_json(), "head": head.to_json()},
        ok,
        check.message,
        publication.root_hash,
        publication.public_key,
    )


_Found = tuple[list[int], str, InclusionProof, SignedTreeHead]


def _proof_from_whole_log(
    published: AttendanceLog, name: str, bucket_start: int | None
) -> _Found | None:
    """Find a pseudonym by reading the whole log (publications made before the index)."""
    found = list(_buckets_of(published, name))
    if not found:
        return None
    starts = [start for start, _ in found]
    chosen = bucket_start if bucket_start in starts else starts[0]
    proof = inclusion_proof_for(published, name, chosen)
    return starts, found[0][1], proof, published.final_head


def _indexed_proof(
    index: LogIndex, name: str, publication: AttendancePublication, bucket_start: int | None
) -> _Found | None:
    """Find a pseudonym and prove one of its buckets through the log's index."""
    host = index.host(name)
    if host is None:
        return None
    at = host.starts.index(bucket_start) if bucket_start in host.starts else 0
    head = index.final_head()
    leaf = host.leaves[at]
    path = index.inclusion_path(leaf, head.tree_size)
    proof = InclusionProof(host.starts[at], name, host.country, leaf, head.tree_size, tuple(path))
    return host.starts, host.country, proof, head


def forget_host_data(
    db: DbSession, settings: Settings, location: Location, secret: str
) -> Location:
    """Delete a location's personal data (label, contact); its counts and the log stay intact."""
    check_location_secret(settings, location, secret)
    # Country, privacy level and the attendance rows stay: they are what was counted
    # and published, and none of them names the host.
    location.label = ""
    location.contact = ""
    db.flush()
    return location


def find_for_host(db: DbSession, public_id: str) -> Location:
    """Return a location by public id for a host page (NotFoundError when unknown)."""
    location = db.scalar(select(Location).where(Location.public_id == public_id))
    if location is None:
        raise NotFoundError("No such location.")
    return location
