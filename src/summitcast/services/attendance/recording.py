"""Attendance recording: accepted heartbeats counted per bucket in memory, added to the rows.

Every worker writes only its own rows of `attendance_counts` (one per summit, bucket and
writer), and readers add the writers' counts up, so nothing contends for a row.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast.storage.database import Database
from summitcast.storage.packed_counts import pack_beats, pack_ids, unpack_beats, unpack_ids
from summitcast.storage.tables import AttendanceCounts, Location, Summit

__all__ = ["AttendanceRecorder", "add_bucket_counts", "store_bucket_counts"]

_IDS_PER_QUERY = 500


class AttendanceRecorder:
    """Per-worker heartbeat counts per (location, bucket), flushed to the database in batches.

    The app flushes it periodically (summitcast.runtime.attendance) and once more,
    with the open bucket, at shutdown.
    """

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

    def _write(self, database: Database, counts: Mapping[tuple[str, int], int]) -> int:
        with self._writing, database.session() as db:
            return add_bucket_counts(db, counts, writer=self.writer)


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
        old = zip(unpack_ids(row.location_ids), unpack_beats(row.heartbeats), strict=True)
        for location_id, n in old:
            merged[location_id] = merged.get(location_id, 0) + n
    ids = sorted(merged)
    packed_ids, packed_beats = pack_ids(ids), pack_beats(map(merged.__getitem__, ids))
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
