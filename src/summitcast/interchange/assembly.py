"""Pieces both schedule readers share: value parsing, people registry, session assembly."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from summitcast.errors import ImportFormatError
from summitcast.interchange.model import (
    ScheduleDocument,
    ScheduleItem,
    SchedulePerson,
    ScheduleSession,
)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# frab and pretalx write "HH:MM"; some tools add seconds ("0:45:00").
_DURATION = re.compile(r"^\s*(\d{1,4}):([0-5]\d)(?::([0-5]\d))?\s*$")
_CLOCK = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$")
# Ids are kept in INTEGER columns: 32-bit on PostgreSQL, whatever the file's tool used.
MAX_EXTERNAL_ID = 2**31 - 1
_ASCII_DIGITS = re.compile(r"^[0-9]+$")
# Namespace for guids we have to invent, so that re-importing gives the same ones.
_GUID_NAMESPACE = uuid.UUID("6f1c3c52-6a43-5b0e-9d0b-7a0c2d1e5f10")

_KIND_BY_TYPE = {
    "break": "break",
    "pause": "break",
    "coffee break": "break",
    "lunch": "break",
    "lunch break": "break",
    "video": "video",
    "recording": "video",
    "pre-recorded": "video",
    "prerecorded": "video",
    "live": "live",
    "slate": "slate",
}


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse input larger than `max_bytes` before any parsing work is done."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImportFormatError(f"schedule must be bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise ImportFormatError(
            f"The schedule is {human_size(len(data))}; "
            f"schedules of at most {human_size(max_bytes)} are accepted."
        )


def human_size(size: int) -> str:
    """A byte count as people read it: '900 bytes', '12.5 KiB', '20 MiB'."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1_048_576:
        return f"{size / 1024:.3g} KiB"
    return f"{size / 1_048_576:.3g} MiB"


def describe(value: object, limit: int = 60) -> str:
    """Quote a bad value for an error message, shortened."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f'"{text}"' if isinstance(value, str) else text


def load_zone(name: str, where: str) -> ZoneInfo:
    """Return the IANA zone called `name` or fail naming the field."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError, TypeError):
        raise ImportFormatError(
            f"{where}: {describe(name)} is not a known IANA time zone", field=where
        ) from None


def parse_external_id(value: object, where: str) -> int | None:
    """An optional id: a non-negative number, or its digits as text (frab writes both)."""
    if value is None or value == "":
        return None
    # str.isdigit() also passes "²", which int() refuses: only ASCII digits are an id.
    if isinstance(value, str) and _ASCII_DIGITS.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EXTERNAL_ID:
        return value
    raise ImportFormatError(
        f"{where}: {describe(value)} is not a whole number from 0 to {MAX_EXTERNAL_ID}",
        field=where,
    )


def parse_duration(text: str, where: str) -> int:
    """Seconds in an "HH:MM" or "H:MM:SS" duration."""
    match = _DURATION.match(text)
    if match is None:
        raise ImportFormatError(f"{where}: {describe(text)} is not HH:MM", field=where)
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)


def parse_day(text: str, where: str) -> date:
    """A calendar date from "YYYY-MM-DD" or from the date part of an ISO date-time."""
    try:
        if len(text.strip()) > 10:
            return datetime.fromisoformat(text.strip()).date()
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ImportFormatError(
            f"{where}: {describe(text)} is not a date (YYYY-MM-DD)", field=where
        ) from None


def _date_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An aware date-time from ISO text (naive ones are in `zone`), or None if not one."""
    stripped = text.strip()
    if len(stripped) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


def parse_moment(text: str, zone: ZoneInfo, where: str) -> datetime:
    """An aware date-time from ISO text or fail naming the field."""
    moment = _date_time(text, zone)
    if moment is None:
        raise ImportFormatError(f"{where}: {describe(text)} is not an ISO date-time", field=where)
    return moment


def resolve_start(
    *,
    day_date: date,
    day_start: datetime | None,
    start_text: str | None,
    date_text: str | None,
    zone: ZoneInfo,
    where: str,
) -> datetime:
    """When an event starts, from its `date` (preferred) or its "HH:MM" `start` on the day."""
    # A full `date` carries its offset, so it wins over the clock time: pretalx has written
    # time_zone_name "UTC" next to dates in +01:00, and frab lists after-midnight events
    # under the previous day with the next calendar date here.
    calendar_day: date | None = None
    if date_text:
        moment = _date_time(date_text, zone)
        if moment is not None:
            return moment
        calendar_day = parse_day(date_text, f"{where}.date")
    if start_text is None or not start_text.strip():
        raise ImportFormatError(f"{where}: has neither date nor start", field=where)
    moment = _date_time(start_text, zone)
    if moment is not None:
        return moment
    match = _CLOCK.match(start_text)
    if match is None:
        raise ImportFormatError(
            f"{where}.start: {describe(start_text)} is not HH:MM or an ISO date-time",
            field=f"{where}.start",
        )
    hours, minutes, seconds = match.groups()
    clock = time(int(hours), int(minutes), int(seconds or 0))
    on_day = calendar_day or day_date
    if (
        calendar_day is None
        and day_start is not None
        and clock < day_start.timetz().replace(tzinfo=None)
    ):
        # Listed under a day that starts at, say, 10:00: an "01:30" is the night after.
        on_day = day_date + timedelta(days=1)
    return datetime.combine(on_day, clock, tzinfo=zone)


def parse_flag(value: object, where: str) -> bool:
    """A yes/no field written as a boolean, a string or nothing at all."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("", "false", "0", "no", "n", "off"):
            return False
        if word in ("true", "1", "yes", "y", "on"):
            return True
    raise ImportFormatError(f"{where}: {describe(value)} is not true or false", field=where)


def kind_for_type(event_type: str) -> str:
    """Map an event `type` (lecture, workshop, pause...) to a playout kind."""
    return _KIND_BY_TYPE.get(" ".join(event_type.lower().split()), "speech")


def canonical_guid(value: str) -> str:
    """A UUID string: the given one in canonical form, or one derived from a non-UUID guid."""
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        # frab once wrote short base64 guids ("HOqeNIb6G7M4hYFKFRkCmQ"); the schema wants
        # UUIDs, so map them to a stable UUID instead of losing the identity.
        return str(uuid.uuid5(_GUID_NAMESPACE, value.strip()))


def invented_guid(*parts: str) -> str:
    """A stable UUID for an event that came without a guid."""
    return str(uuid.uuid5(_GUID_NAMESPACE, "\x1f".join(parts)))


def normalised_name(name: str) -> str:
    """A person name folded for comparison: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def person_key(guid: str | None, external_id: int | None, name: str) -> str:
    """The dedup key of a person: guid, else id, else normalised name."""
    if guid:
        return guid
    if external_id is not None:
        return f"id:{external_id}"
    return f"name:{normalised_name(name)}"


@dataclass(slots=True)
class ScheduleBuilder:
    """Collects people and events while a reader walks a file, then assembles the document."""

    zone: ZoneInfo
    _people: dict[str, SchedulePerson] = field(default_factory=dict)
    _sessions: dict[tuple[date, str], list[ScheduleItem]] = field(default_factory=dict)
    _guids: set[str] = field(default_factory=set)

    def add_person(
        self,
        *,
        name: str,
        guid: str | None,
        external_id: int | None,
        biography: str,
        country: str | None,
        where: str,
    ) -> str:
        """Register a speaker (or merge into a known one) and return their key."""
        name = " ".join(name.split())
        if not name:
            raise ImportFormatError(f"{where}: person has no name", field=where)
        guid = canonical_guid(guid) if guid and guid.strip() else None
        key = person_key(guid, external_id, name)
        known = self._people.get(key)
        if known is None:
            self._people[key] = SchedulePerson(
                key=key,
                guid=guid,
                external_id=external_id,
                name=name,
                biography=biography,
                country=country or None,
            )
        elif (not known.biography and biography) or (known.country is None and country):
            # The first mention may be a bare name (frab XML); later ones may say more.
            self._people[key] = SchedulePerson(
                key=key,
                guid=known.guid,
                external_id=known.external_id,
                name=known.name,
                biography=known.biography or biography,
                country=known.country or country or None,
            )
        return key

    def add_item(self, day_date: date, room: str, item: ScheduleItem, where: str) -> None:
        """File an event under its listed day and room."""
        if item.guid in self._guids:
            raise ImportFormatError(f"{where}: guid {item.guid} is used by two events", field=where)
        self._guids.add(item.guid)
        self._sessions.setdefault((day_date, room), []).append(item)

    def build(
        self,
        *,
        title: str,
        acronym: str,
        time_zone: str,
        start_date: date | None,
        end_date: date | None,
        languages: tuple[str, ...] | None,
        url: str | None,
        generator: str | None,
    ) -> ScheduleDocument:
        """Assemble the document: sessions by day then room order, items by start."""
        sessions = []
        for (day_date, room), items in sorted(
            self._sessions.items(), key=lambda entry: entry[0][0]
        ):
            ordered = tuple(sorted(items, key=lambda item: (item.start, item.guid)))
            sessions.append(
                ScheduleSession(
                    key=f"{day_date.isoformat()}/{room}",
                    day_date=day_date,
                    room=room,
                    title=room,
                    start=ordered[0].start,
                    end=max(item.start + timedelta(seconds=item.duration_s) for item in ordered),
                    items=ordered,
                )
            )
        days = [session.day_date for session in sessions]
        first = start_date or (min(days) if days else None)
        last = end_date or (max(days) if days else None)
        if first is None or last is None:
            raise ImportFormatError("conference has no start date and no days with events")
        if languages is None:
            seen: dict[str, None] = {}
            for session in sessions:
                for item in session.items:
                    if item.language:
                        seen.setdefault(item.language, None)
            languages = tuple(seen)
        return ScheduleDocument(
            title=title,
            acronym=acronym,
            time_zone=time_zone,
            start_date=first,
            end_date=last,
            languages=languages,
            sessions=tuple(sessions),
            people=tuple(self._people.values()),
            url=url or None,
            generator=generator or None,
        )


# --- writing -----------------------------------------------------------------------------

_ACRONYM = re.compile(r"^[a-z0-9_-][a-z0-9_]{3,}(-2[0-9]{3}-[a-z]+)?$")


def ascii_slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens; empty when nothing Latin is left."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "-".join(re.findall(r"[a-z0-9]+", folded.lower()))


def export_acronym(acronym: str) -> str:
    """The acronym in the shape the c3voc schema demands (`^[a-z0-9_-][a-z0-9_]{3,}…$`)."""
    lowered = acronym.strip().lower()
    if _ACRONYM.match(lowered):
        return lowered
    cleaned = re.sub(r"[^a-z0-9_]", "_", lowered)
    return cleaned.ljust(4, "_")


def event_slug(acronym: str, external_id: int, title: str) -> str:
    """A slug matching the schema's `^[a-z0-9_-]+[a-z0-9]$`, pretalx style."""
    parts = [ascii_slug(acronym), str(external_id), ascii_slug(title)[:60]]
    return "-".join(part for part in parts if part).strip("-_") or f"event-{external_id}"


def export_id(item: ScheduleItem) -> int:
    """The integer id written for an item: its own, or one derived from its guid."""
    if item.external_id is not None:
        return item.external_id
    # The schema requires an id >= 1; a stable one keeps re-exports diffable.
    return uuid.UUID(item.guid).int % 2_000_000_000 + 1


def clock(duration_s: int) -> str:
    """ "HH:MM" for a duration (seconds are dropped: the schema allows only HH:MM)."""
    return f"{duration_s // 3600:02d}:{duration_s % 3600 // 60:02d}"


def sessions_by_day(doc: ScheduleDocument) -> dict[date, list[ScheduleSession]]:
    """Sessions grouped by listed day, in document order."""
    days: dict[date, list[ScheduleSession]] = {}
    for session in doc.sessions:
        days.setdefault(session.day_date, []).append(session)
    return dict(sorted(days.items()))


def item_end(item: ScheduleItem) -> datetime:
    """When an item ends."""
    return item.start + timedelta(seconds=item.duration_s)
