"""The attendance pages' use cases: the organisers' report, publishing, public files, hosts.

One function per page of web/routes/reports.py, composed of the attendance and report
services (summitcast.services.attendance, summitcast.services.reports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session as DbSession

from summitcast.audit.live import PublishedHead
from summitcast.config import Settings
from summitcast.errors import NotFoundError
from summitcast.services import attendance
from summitcast.services.programme import get_summit
from summitcast.services.reports import BuiltReport, ReportCache, public_csv, public_map
from summitcast.storage.tables import AttendancePublication, Location, Summit

# Writes this worker's closed attendance buckets to the database (web/deps.py).
Flush = Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class OrganiserReport:
    """The organisers' report page: the built report and where publishing stands."""

    built: BuiltReport
    publication: AttendancePublication | None
    live: bool  # whether the live log is being published


def organiser_report(
    db: DbSession, settings: Settings, cache: ReportCache, summit: Summit
) -> OrganiserReport:
    """The built report (from the cache), the latest publication, and the live log's state."""
    return OrganiserReport(
        cache.get(summit),
        attendance.latest_publication(db, summit),
        attendance.live_log_is_open(settings, summit),
    )


async def publish(
    db: DbSession, settings: Settings, summit: Summit, *, flush: Flush, cache: ReportCache
) -> None:
    """Publish the signed log and its figures, this worker's newest counts included."""
    await flush()
    # Seconds of counting, hashing and signing at 50,000 locations: off the event loop.
    await asyncio.to_thread(attendance.publish_attendance, db, summit, settings)
    cache.forget(summit.id)


async def start_live(db: DbSession, settings: Settings, summit: Summit, *, flush: Flush) -> None:
    """Start publishing the log live (a signed head every interval), newest counts included."""
    await flush()
    await asyncio.to_thread(attendance.start_live_publishing, db, summit, settings)


def live_log_of(db: DbSession, settings: Settings, slug: str) -> tuple[Summit, Path]:
    """The summit and its live log's file; NotFoundError until the organisers start it."""
    summit = get_summit(db, slug)
    path = attendance.live_log_path(settings, summit)
    if path is None:
        raise NotFoundError("The organisers have not started publishing attendance live.")
    return summit, path


def live_heads_document(db: DbSession, settings: Settings, slug: str) -> dict[str, Any]:
    """Every signed head of the live log with its consistency proof, as heads.json."""
    summit, _ = live_log_of(db, settings, slug)
    key, _ = attendance.summit_keys(settings, summit)
    return {
        "summit": summit.slug,
        "public_key": attendance.public_key_b64(key),
        "log": f"/s/{summit.slug}/attendance/live-log.jsonl",
        "heads": [head.to_json() for head in attendance.live_heads(settings, summit)],
    }


def publication_of(db: DbSession, slug: str) -> tuple[Summit, AttendancePublication]:
    """The summit and its latest publication; NotFoundError before the first."""
    summit = get_summit(db, slug)
    publication = attendance.latest_publication(db, summit)
    if publication is None:
        raise NotFoundError("The organisers have not published attendance figures yet.")
    return summit, publication


@dataclass(frozen=True, slots=True)
class PublicAttendance:
    """The public attendance page: the latest publication and the live log's heads."""

    summit: Summit
    publication: AttendancePublication | None
    titles: dict[str, str]  # session titles by id (attendance.session_windows)
    heads: list[PublishedHead]


def public_attendance(db: DbSession, settings: Settings, slug: str) -> PublicAttendance:
    """What the public attendance page shows of a summit."""
    summit = get_summit(db, slug)
    publication = attendance.latest_publication(db, summit)
    _, titles = attendance.session_windows(db, summit)
    return PublicAttendance(summit, publication, titles, attendance.live_heads(settings, summit))


def published_log(db: DbSession, settings: Settings, slug: str) -> tuple[Summit, Path]:
    """The summit and the file of its published log."""
    summit, publication = publication_of(db, slug)
    return summit, attendance.published_log_path(settings, summit, publication)


def published_csv(db: DbSession, slug: str, name: str) -> tuple[Summit, str]:
    """The summit and one CSV table of its published figures."""
    summit, publication = publication_of(db, slug)
    return summit, public_csv(publication.figures, name)


def published_map(db: DbSession, settings: Settings, slug: str) -> Path:
    """The PNG world map of the published figures; NotFoundError without the atlas."""
    summit, publication = publication_of(db, slug)
    path = public_map(settings, summit, publication)
    if path is None:
        raise NotFoundError("No world map: the world-atlas file is missing.")
    return path


def host_check(
    db: DbSession,
    settings: Settings,
    public_id: str,
    secret: str,
    *,
    bucket_start: int | None = None,
) -> tuple[Location, attendance.HostInclusion]:
    """A location and whether (and where) it was counted, checked with its secret."""
    location = attendance.find_for_host(db, public_id)
    found = attendance.host_inclusion(db, settings, location, secret, bucket_start=bucket_start)
    return location, found


def forget_host(db: DbSession, settings: Settings, public_id: str, secret: str) -> Location:
    """Delete a location's label and contact (checked with its secret); counts stay."""
    location = attendance.find_for_host(db, public_id)
    return attendance.forget_host_data(db, settings, location, secret)
