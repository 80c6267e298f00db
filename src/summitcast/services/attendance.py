"""Attendance: count accepted heartbeats per bucket, store them, publish the signed public log.

The path of one heartbeat: LiveService accepts it and calls `AttendanceRecorder.count`
(a dictionary increment in this worker's memory); a background task moves closed
buckets into `attendance_buckets` with an upsert that *adds*, so every worker's
share of a bucket ends up in one row.  `publish_attendance` turns those rows into
the public attendance log (summitcast.audit.log) and keeps its final signed head.

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
import hmac
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.log import (
    AttendanceLog,
    figures_to_dict,
    pseudonym,
    read_log,
    write_attendance_log_from_buckets,
)
from summitcast.audit.verify import inclusion_proof_for, verify_inclusion_proof
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
from summitcast.errors import NotFoundError, PermissionDeniedError, ValidationError
from summitcast.storage.database import Database
from summitcast.storage.tables import (
    AttendanceBucket,
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
    "add_bucket_counts",
    "attendance_data",
    "check_location_secret",
    "counting_rule",
    "forget_host_data",
    "host_inclusion",
    "latest_publication",
    "publish_attendance",
    "published_log_path",
    "session_windows",
    "summit_keys",
]

_SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_ROWS_PER_STATEMENT = 1000  # 4 parameters each: far below SQLite's 32,766 variables
_IDS_PER_QUERY = 500


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
        """Start with no counts."""
        self.bucket_seconds = bucket_seconds
        self._clock = clock
        self._counts: Counter[tuple[str, int]] = Counter()

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
        """Write closed buckets (or all) to the database; returns how many rows were added to."""
        # Taken in the event loop thread, where `count` runs: no lock is needed.
        counts = self.take(everything=everything)
        if not counts:
            return 0
        try:
            return await asyncio.to_thread(_write_counts, database, counts)
        except Exception:
            self.give_back(counts)
            raise

    def flush_now(self, database: Database, *, everything: bool = True) -> int:
        """Write counts synchronously (shutdown, tests and tools without an event loop)."""
        counts = self.take(everything=everything)
        if not counts:
            return 0
        try:
            return _write_counts(database, counts)
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


def _write_counts(database: Database, counts: Mapping[tuple[str, int], int]) -> int:
    with database.session() as db:
        return add_bucket_counts(db, counts)


def add_bucket_counts(db: DbSession, counts: Mapping[tuple[str, int], int]) -> int:
    """Add heartbeat counts keyed by (location public id, bucket start) to attendance_buckets."""
    public_ids = sorted({public_id for public_id, _ in counts})
    rows_of: dict[str, tuple[int, int]] = {}
    for i in range(0, len(public_ids), _IDS_PER_QUERY):
        chunk = public_ids[i : i + _IDS_PER_QUERY]
        query = select(Location.public_id, Location.id, Location.summit_id).where(
            Location.public_id.in_(chunk)
        )
        rows_of.update({p: (lid, sid) for p, lid, sid in db.execute(query)})
    rows = [
        {
            "location_id": rows_of[public_id][0],
            "bucket_start": start,
            "summit_id": rows_of[public_id][1],
            "heartbeats": n,
        }
        for (public_id, start), n in counts.items()
        if public_id in rows_of  # a location deleted meanwhile has nothing left to count
    ]
    # One order for every worker, so two PostgreSQL transactions updating the same
    # rows take their row locks in the same order and cannot deadlock.
    rows.sort(key=lambda r: (r["location_id"], r["bucket_start"]))
    table = AttendanceBucket.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["location_id", "bucket_start"],
        set_={"heartbeats": table.c.heartbeats + statement.excluded.heartbeats},
    )
    for i in range(0, len(rows), _ROWS_PER_STATEMENT):
        db.execute(statement, rows[i : i + _ROWS_PER_STATEMENT])
    db.flush()
    return len(rows)


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


@dataclass(frozen=True, slots=True)
class _Counted:
    """Buckets keyed by location public id, with real countries, and who is hidden."""

    buckets: list[Bucket]
    hidden: frozenset[str]


def _present_buckets(
    db: DbSession, summit: Summit, windows: Sequence[SessionWindow], rule: CountingRule
) -> _Counted:
    """Return every bucket overlapping a session (empty ones too) with its present locations."""
    starts: set[int] = set()
    for window in windows:
        starts.update(window.bucket_starts(rule.bucket_seconds))
    present: dict[int, dict[str, str]] = {start: {} for start in sorted(starts)}
    hidden: set[str] = set()
    query = (
        select(
            AttendanceBucket.bucket_start,
            Location.public_id,
            Location.country,
            Location.privacy_level,
        )
        .join(Location, Location.id == AttendanceBucket.location_id)
        .where(
            AttendanceBucket.summit_id == summit.id,
            AttendanceBucket.heartbeats >= rule.min_heartbeats,
        )
        .execution_options(yield_per=20_000)
    )
    for start, public_id, country, level in db.execute(query):
        members = present.get(int(start))
        if members is None:
            continue  # outside every session: not part of the published figures
        members[public_id] = country
        if level == "hidden":
            hidden.add(public_id)
    return _Counted(
        [Bucket(start, members) for start, members in present.items()], frozenset(hidden)
    )


def _tally(
    buckets: Sequence[Bucket],
    country: Mapping[str, str],
    windows: Sequence[SessionWindow],
    rule: CountingRule,
) -> AttendanceFigures:
    tally = AttendanceTally(windows, rule)
    for bucket in buckets:
        keys = list(bucket.present)
        tally.add_columns(bucket.start, keys, [country[key] for key in keys])
    return tally.figures()


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
    """Compute the summit's attendance figures from attendance_buckets and presence samples."""
    rule = counting_rule(settings)
    windows, titles = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to count.")
    counted = _present_buckets(db, summit, windows, rule)
    public = _tally(
        counted.buckets, public_countries(counted.buckets, counted.hidden, rule.k), windows, rule
    )
    # Exact figures: every country under its own name (k = 1), hidden hosts still as ZZ.
    exact_country = {
        key: SUPPRESSED_COUNTRY if key in counted.hidden else country
        for bucket in counted.buckets
        for key, country in bucket.present.items()
    }
    exact_rule = CountingRule(
        rule.bucket_seconds, rule.min_heartbeats, rule.session_min_percent, k=1
    )
    exact = _tally(counted.buckets, exact_country, windows, exact_rule)
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


def publish_attendance(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
) -> AttendancePublication:
    """Write the signed public log of the summit's counted buckets and store its final head."""
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
    with partial.open("w", encoding="utf-8") as out:
        figures, head = write_attendance_log_from_buckets(
            out,
            summit=summit.slug,
            buckets=counted.buckets,
            hidden=counted.hidden,
            sessions=windows,
            rule=rule,
            audit_secret=secret,
            signing_key=key,
            clock=clock,
        )
    # Renamed only when whole: a reader never sees half a log.
    path = folder / name
    partial.rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    publication = AttendancePublication(
        summit_id=summit.id,
        published_at=now,
        log_file=name,
        log_sha256=digest,
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        public_key=public_key_b64(key),
        figures=figures_to_dict(figures),
    )
    db.add(publication)
    db.flush()
    return publication


# --- hosts -------------------------------------------------------------------------------


def check_location_secret(location: Location, secret: str) -> None:
    """Refuse unless `secret` is the location's own secret (constant-time comparison)."""
    if not secret or not hmac.compare_digest(secret.encode(), location.secret.encode()):
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
    check_location_secret(location, secret)
    summit = location.summit
    publication = latest_publication(db, summit)
    if publication is None:
        return HostInclusion(False, "", "", [], None, False, "Nothing is published yet.", "", "")
    _, audit_secret = summit_keys(settings, summit)
    name = pseudonym(audit_secret, location.public_id)
    published = read_log(published_log_path(settings, summit, publication))
    found = list(_buckets_of(published, name))
    if not found:
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
    starts = [start for start, _ in found]
    chosen = bucket_start if bucket_start in starts else starts[0]
    proof = inclusion_proof_for(published, name, chosen)
    head = published.final_head
    # Checked against the head stored at publication, not only the file's own head.
    check = verify_inclusion_proof(name, proof, head, base64.b64decode(publication.public_key))
    ok = check.ok and head.root_hash.hex() == publication.root_hash
    return HostInclusion(
        True,
        name,
        found[0][1],
        starts,
        {"proof": proof.to_json(), "head": head.to_json()},
        ok,
        check.message,
        publication.root_hash,
        publication.public_key,
    )


def forget_host_data(db: DbSession, location: Location, secret: str) -> Location:
    """Delete a location's personal data (label, contact); its counts and the log stay intact."""
    check_location_secret(location, secret)
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
