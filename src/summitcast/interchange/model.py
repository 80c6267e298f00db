"""Format-neutral schedule: what every importer produces and every exporter reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

# Kinds the playout understands; an event's own `type` is kept beside it for round trips.
KINDS = ("speech", "video", "slate", "live", "break")


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulePerson:
    """A speaker, deduplicated across the whole document by `key`."""

    key: str
    guid: str | None
    external_id: int | None
    name: str
    biography: str
    country: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleItem:
    """One event of a session (a talk, a break, a video...)."""

    guid: str
    external_id: int | None
    title: str
    subtitle: str
    kind: str
    type: str
    start: datetime
    duration_s: int
    language: str
    abstract: str
    description: str
    track: str
    do_not_record: bool
    url: str
    person_keys: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleSession:
    """The events of one room on one listed day, ordered by start."""

    key: str
    day_date: date
    room: str
    title: str
    start: datetime
    end: datetime
    items: tuple[ScheduleItem, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleDocument:
    """A whole conference schedule."""

    title: str
    acronym: str
    time_zone: str
    start_date: date
    end_date: date
    languages: tuple[str, ...]
    sessions: tuple[ScheduleSession, ...]
    people: tuple[SchedulePerson, ...]
    url: str | None
    generator: str | None
