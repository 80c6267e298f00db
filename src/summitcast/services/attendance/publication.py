"""Publication: the signed public attendance log of a summit, written whole or finished live."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from pathlib import Path
from typing import TextIO, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.keys import public_key_b64
from summitcast.audit.live import LiveLog
from summitcast.audit.live_pointer import is_finished
from summitcast.audit.log import figures_to_dict, write_attendance_log_from_buckets
from summitcast.audit.log_files import file_sha256, write_index_beside, write_log_with_index
from summitcast.audit.log_index import LogIndexBuilder
from summitcast.audit.records import SignedTreeHead
from summitcast.config import Settings
from summitcast.domain.attendance import (
    AttendanceFigures,
    Bucket,
    CountingRule,
    SessionWindow,
    public_countries,
)
from summitcast.errors import ValidationError
from summitcast.services.attendance.keys import summit_dir, summit_keys
from summitcast.services.attendance.live import append_closed_buckets, live_log_path, utc_now
from summitcast.services.attendance.queries import bucket_rows, counting_rule, session_windows
from summitcast.storage.tables import AttendancePublication, Location, Summit

__all__ = ["publish_attendance"]


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
        for start, ids, beats in bucket_rows(db, summit.id, min(present), max(present)):
            members = present.get(start)
            if members is None:
                continue  # outside every session: not part of the published figures
            # C-speed filter: the ids whose heartbeats reach the rule's minimum.
            enough = compress(ids, map(floor.__le__, beats))
            # A deleted location's id may linger in a packed row: it has nothing to count.
            members.extend(i for i in enough if i in public_id)
    return _Counted(list(present.items()), public_id, country, frozenset(hidden))


def publish_attendance(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> AttendancePublication:
    """Write the signed public log of the summit's counted buckets and store its final head.

    When the summit's log is live, it is finished instead: the remaining buckets
    are appended and the figures record signs them, so every head published during
    the event stays a prefix of the published log.
    """
    live = live_log_path(settings, summit)
    if live is not None and not is_finished(live):
        return _finish_live_log(db, summit, settings, live, clock)
    rule = counting_rule(settings)
    windows, _ = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to publish.")
    counted = _present_buckets(db, summit, windows, rule)
    key, secret = summit_keys(settings, summit)
    folder = summit_dir(settings, summit)
    now = clock()
    path = folder / f"attendance-log-{now.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"

    def write(out: TextIO, index: LogIndexBuilder) -> tuple[AttendanceFigures, SignedTreeHead]:
        return write_attendance_log_from_buckets(
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

    figures, head = write_log_with_index(path, write)
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
        log_sha256=file_sha256(path),
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        public_key=public_key_b64(key),
        figures=figures_to_dict(figures),
    )
    db.add(publication)
    db.flush()
    return publication


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
        append_closed_buckets(db, summit, settings, live, secret, now, everything=True)
        # Read back from the file: the figures are those of the entries as logged.
        index = LogIndexBuilder()
        figures = live.replay(index)
        head = live.finish(figures, key, clock)
    write_index_beside(path, index, head)
    return _record_publication(db, summit, now, path, head, key, figures)
