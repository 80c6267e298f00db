"""Attendance read back: the counting rule, stored counts, session windows, publications."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.attendance import CountingRule, SessionWindow
from summitcast.storage.packed_counts import unpack_beats, unpack_ids
from summitcast.storage.tables import (
    AttendanceCounts,
    AttendancePublication,
    Broadcast,
    Session,
    Summit,
)

__all__ = [
    "bucket_rows",
    "counting_rule",
    "latest_publication",
    "published_log_path",
    "session_windows",
    "stored_counts",
    "writer_rows",
]


def counting_rule(settings: Settings) -> CountingRule:
    """Return the counting rule these settings describe."""
    return CountingRule(
        bucket_seconds=settings.attendance_bucket_s,
        min_heartbeats=settings.attendance_min_heartbeats,
        session_min_percent=settings.attendance_session_min_percent,
        k=settings.k_anonymity,
    )


def _bucket_totals(rows: Sequence[tuple[bytes, bytes]]) -> tuple[array[int], array[int]]:
    """Add up the writers' rows of one bucket: (location ids, heartbeats), ids ascending."""
    if len(rows) == 1:
        return unpack_ids(rows[0][0]), unpack_beats(rows[0][1])
    total: dict[int, int] = {}
    for packed_ids, packed_beats in rows:
        ids, beats = unpack_ids(packed_ids), unpack_beats(packed_beats)
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


def writer_rows(
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


def bucket_rows(
    db: DbSession, summit_id: int, first: int | None = None, last: int | None = None
) -> Iterator[tuple[int, array[int], array[int]]]:
    """Yield (bucket start, location ids, heartbeats) per bucket in time order, writers added."""
    for start, rows in writer_rows(db, summit_id, first, last):
        yield (start, *_bucket_totals(rows))


def stored_counts(db: DbSession, summit: Summit) -> dict[tuple[int, int], int]:
    """Return every stored count of a summit as (location id, bucket start) → heartbeats."""
    return {
        (location_id, start): n
        for start, ids, beats in bucket_rows(db, summit.id)
        for location_id, n in zip(ids, beats, strict=True)
    }


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
