"""Live publication: a summit's log kept open during the event, a signed head each interval."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import compress
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.live import LiveLog, LiveLogBusyError, PublishedHead, read_heads, snapshot_of
from summitcast.audit.live_pointer import is_finished, live_log_in, open_live_folders, point_to
from summitcast.audit.log import pseudonym
from summitcast.config import Settings
from summitcast.domain.attendance import SUPPRESSED_COUNTRY
from summitcast.errors import ConflictError, ValidationError
from summitcast.services.attendance.keys import summit_dir, summit_keys
from summitcast.services.attendance.queries import bucket_rows, counting_rule, session_windows
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit

__all__ = [
    "LivePublisher",
    "advance_live_log",
    "append_closed_buckets",
    "live_heads",
    "live_log_is_open",
    "live_log_length",
    "live_log_path",
    "start_live_publishing",
]

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """Return the time now, in UTC (the default clock of publishing)."""
    return datetime.now(UTC)


def live_log_path(settings: Settings, summit: Summit) -> Path | None:
    """Return the summit's live log, or None when live publishing was never started."""
    return live_log_in(settings.attendance_dir / summit.slug)


def live_log_is_open(settings: Settings, summit: Summit) -> bool:
    """Return whether the summit's log is being published live (started, not finished)."""
    path = live_log_path(settings, summit)
    return path is not None and not is_finished(path)


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
    clock: Callable[[], datetime] = utc_now,
) -> PublishedHead:
    """Start the summit's live log: its closed buckets so far and a first signed head.

    From then on `advance_live_log` (a background task of the app) appends each
    closed bucket and signs a new head every `attendance_head_interval_s`.
    """
    windows, _ = session_windows(db, summit)
    if not windows:
        raise ValidationError("This summit has no sessions, so there is nothing to publish.")
    current = live_log_path(settings, summit)
    if current is not None and not is_finished(current):
        raise ConflictError("Live publishing is already on for this summit.")
    key, _ = summit_keys(settings, summit)
    folder = summit_dir(settings, summit)
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
    point_to(folder, path)
    head = advance_live_log(db, summit, settings, clock=clock)
    assert head is not None  # just created, so not finished
    return head


def advance_live_log(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
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
        append_closed_buckets(db, summit, settings, live, secret, now, everything=False)
        return live.sign_head(key, clock)


def _wanted_starts(live: LiveLog, closed_before: float, *, everything: bool) -> list[int]:
    """Return the starts of the log's session buckets after its last one that have closed."""
    rule = live.rule
    starts: set[int] = set()
    for window in live.header.sessions:
        starts.update(window.bucket_starts(rule.bucket_seconds))
    return sorted(
        start
        for start in starts
        if (live.last_start is None or start > live.last_start)
        and (everything or start + rule.bucket_seconds <= closed_before)
    )


def append_closed_buckets(
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
    # Other workers flush a closed bucket within one flush interval: wait two.
    grace = 2 * settings.attendance_flush_interval_s
    wanted = _wanted_starts(live, now.timestamp() - grace, everything=everything)
    if not wanted:
        return
    present: dict[int, list[int]] = {start: [] for start in wanted}
    for start, ids, beats in bucket_rows(db, summit.id, wanted[0], wanted[-1]):
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


class LivePublisher:
    """Advances every live log of this data folder; the app runs `tick` each head interval."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Advance the live logs of this data folder against this database."""
        self._settings = settings
        self._database = database
        self._clock = clock

    def live_slugs(self) -> list[str]:
        """Return the slugs of summits whose live log is not finished."""
        return open_live_folders(self._settings.attendance_dir)

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
