"""The c3voc/frab JSON schedule (as pretalx and frab export it): reader and writer."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from summitcast.errors import ImportFormatError
from summitcast.interchange.assembly import (
    DEFAULT_MAX_BYTES,
    ScheduleBuilder,
    canonical_guid,
    check_size,
    clock,
    event_slug,
    export_acronym,
    export_id,
    invented_guid,
    kind_for_type,
    load_zone,
    parse_day,
    parse_duration,
    parse_external_id,
    parse_flag,
    parse_moment,
    resolve_start,
    sessions_by_day,
)
from summitcast.interchange.model import ScheduleDocument, ScheduleItem, SchedulePerson

SCHEMA_URL = "https://c3voc.de/schedule/schema.json"
# Room guids are not part of our model; derive stable ones so the schema's Room is satisfied.
_ROOM_NAMESPACE = uuid.UUID("0b5f3f0e-2f55-5a43-8f4c-2a3e1c9d7b61")


def load_schema() -> dict[str, Any]:
    """The c3voc schedule JSON Schema shipped with summitcast."""
    text = resources.files("summitcast.interchange").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# --- reading -----------------------------------------------------------------------------


def parse_frab_json(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ScheduleDocument:
    """Read a frab/pretalx JSON schedule; every failure is an ImportFormatError."""
    check_size(data, max_bytes)
    text = _decode(bytes(data))
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(
            f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ImportFormatError("JSON is nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ImportFormatError(f"JSON value cannot be read: {exc}") from None
    return _read_document(raw)


def _decode(data: bytes) -> str:
    """UTF-8 text of the file (a BOM is allowed), or an error pointing at the bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportFormatError(
            f"JSON is not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column}"
        ) from None


def _type_name(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImportFormatError(
            f"{path}: expected an object, found {_type_name(value)}", field=path
        )
    return value


def _array(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ImportFormatError(f"{path}: expected an array, found {_type_name(value)}", field=path)
    return value


def _required(container: dict[str, Any], key: str, path: str) -> Any:
    if key not in container:
        raise ImportFormatError(f"{path}.{key}: required field is missing", field=f"{path}.{key}")
    return container[key]


def _text(container: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    """A string field; null and absent (when allowed) read as ""."""
    value = _required(container, key, path) if required else container.get(key)
    if value is None:
        if required:
            raise ImportFormatError(f"{path}.{key}: must not be null", field=f"{path}.{key}")
        return ""
    if not isinstance(value, str):
        raise ImportFormatError(
            f"{path}.{key}: expected a string, found {_type_name(value)}", field=f"{path}.{key}"
        )
    return value


def _integer(container: dict[str, Any], key: str, path: str) -> int | None:
    """An optional integer id; frab sometimes writes it as a digit string."""
    return parse_external_id(container.get(key), f"{path}.{key}")


def _read_document(raw: object) -> ScheduleDocument:
    root = _object(raw, "document")
    schedule = _object(_required(root, "schedule", "document"), "schedule")
    path = "schedule.conference"
    conference = _object(_required(schedule, "conference", "schedule"), path)
    title = _text(conference, "title", path, required=True)
    acronym = _text(conference, "acronym", path)
    time_zone = _text(conference, "time_zone_name", path).strip() or "UTC"
    zone = load_zone(time_zone, f"{path}.time_zone_name")
    start_text = _text(conference, "start", path)
    end_text = _text(conference, "end", path)
    builder = ScheduleBuilder(zone=zone)
    days = _array(_required(conference, "days", path), f"{path}.days")
    for index, day in enumerate(days):
        _read_day(builder, _object(day, f"{path}.days[{index}]"), f"{path}.days[{index}]", acronym)
    return builder.build(
        title=title,
        acronym=acronym,
        time_zone=time_zone,
        start_date=_conference_day(start_text, zone, f"{path}.start"),
        end_date=_conference_day(end_text, zone, f"{path}.end"),
        languages=_languages(conference, path),
        url=_text(conference, "url", path),
        generator=_generator(root.get("generator")),
    )


def _conference_day(text: str, zone: ZoneInfo, where: str) -> date | None:
    """The local date of a conference start/end written as a date or a date-time."""
    if not text.strip():
        return None
    if len(text.strip()) > 10:
        return parse_moment(text, zone, where).date()
    return parse_day(text, where)


def _languages(conference: dict[str, Any], path: str) -> tuple[str, ...] | None:
    """Declared conference languages (schedule v2 `languages` or our `meta.languages`)."""
    meta = conference.get("meta")
    if "languages" in conference:
        value, where = conference["languages"], f"{path}.languages"
    elif isinstance(meta, dict) and "languages" in meta:
        value, where = meta["languages"], f"{path}.meta.languages"
    else:
        return None
    items = _array(value, where)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ImportFormatError(
                f"{where}[{index}]: expected a string, found {_type_name(item)}", field=where
            )
    return tuple(items)


def _generator(value: object) -> str | None:
    """A one-line generator description from `{"name", "version"}` or a plain string."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        parts = [value.get("name"), value.get("version")]
        text = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
        return text or None
    return None


def _read_day(builder: ScheduleBuilder, day: dict[str, Any], path: str, acronym: str) -> None:
    day_date = parse_day(_text(day, "date", path, required=True), f"{path}.date")
    day_start_text = _text(day, "day_start", path)
    day_start = (
        parse_moment(day_start_text, builder.zone, f"{path}.day_start")
        if day_start_text.strip()
        else None
    )
    rooms = _object(_required(day, "rooms", path), f"{path}.rooms")
    for room_name, events in rooms.items():
        room_path = f"{path}.rooms[{json.dumps(room_name, ensure_ascii=False)}]"
        for index, event in enumerate(_array(events, room_path)):
            event_path = f"{room_path}[{index}]"
            item = _read_event(
                builder,
                _object(event, event_path),
                event_path,
                acronym=acronym,
                day_date=day_date,
                day_start=day_start,
                room=room_name,
            )
            builder.add_item(day_date, room_name.strip(), item, event_path)


def _read_event(
    builder: ScheduleBuilder,
    event: dict[str, Any],
    path: str,
    *,
    acronym: str,
    day_date: date,
    day_start: datetime | None,
    room: str,
) -> ScheduleItem:
    title = _text(event, "title", path, required=True)
    external_id = _integer(event, "id", path)
    start = resolve_start(
        day_date=day_date,
        day_start=day_start,
        start_text=_text(event, "start", path) or None,
        date_text=_text(event, "date", path) or None,
        zone=builder.zone,
        where=path,
    )
    duration_s = parse_duration(_text(event, "duration", path, required=True), f"{path}.duration")
    guid_text = _text(event, "guid", path)
    if guid_text.strip():
        guid = canonical_guid(guid_text)
    elif external_id is not None:
        guid = invented_guid(acronym, str(external_id))
    else:
        guid = invented_guid(acronym, room, start.isoformat(), title)
    event_type = _text(event, "type", path)
    person_keys: list[str] = []
    persons = event.get("persons")
    if persons is not None:
        for index, person in enumerate(_array(persons, f"{path}.persons")):
            key = _read_person(builder, person, f"{path}.persons[{index}]")
            if key not in person_keys:
                person_keys.append(key)
    return ScheduleItem(
        guid=guid,
        external_id=external_id,
        title=title,
        subtitle=_text(event, "subtitle", path),
        kind=kind_for_type(event_type),
        type=event_type,
        start=start,
        duration_s=duration_s,
        language=_text(event, "language", path),
        abstract=_text(event, "abstract", path),
        description=_text(event, "description", path),
        track=_text(event, "track", path),
        do_not_record=parse_flag(event.get("do_not_record"), f"{path}.do_not_record"),
        url=_text(event, "url", path),
        person_keys=tuple(person_keys),
    )


def _read_person(builder: ScheduleBuilder, person: object, path: str) -> str:
    if isinstance(person, str):
        return builder.add_person(
            name=person, guid=None, external_id=None, biography="", country=None, where=path
        )
    entry = _object(person, path)
    name = _text(entry, "public_name", path) or _text(entry, "name", path)
    return builder.add_person(
        name=name,
        guid=_text(entry, "guid", path) or None,
        external_id=_integer(entry, "id", path),
        biography=_text(entry, "biography", path),
        country=_text(entry, "country", path) or None,
        where=path,
    )


# --- writing -----------------------------------------------------------------------------


def export_frab_json(doc: ScheduleDocument) -> dict[str, Any]:
    """The document as a c3voc/frab JSON schedule that validates against the shipped schema."""
    zone = ZoneInfo(doc.time_zone)
    people = {person.key: person for person in doc.people}
    acronym = export_acronym(doc.acronym)
    days: list[dict[str, Any]] = []
    room_names: dict[str, None] = {}
    for index, (day_date, sessions) in enumerate(sessions_by_day(doc).items(), start=1):
        rooms: dict[str, list[dict[str, Any]]] = {}
        for session in sessions:
            room_names.setdefault(session.room, None)
            rooms[session.room] = [
                _event(item, session.room, acronym, zone, people) for item in session.items
            ]
        days.append(
            {
                "index": index,
                "date": day_date.isoformat(),
                "day_start": min(s.start for s in sessions).astimezone(zone).isoformat(),
                "day_end": max(s.end for s in sessions).astimezone(zone).isoformat(),
                "rooms": rooms,
            }
        )
    conference: dict[str, Any] = {
        "acronym": acronym,
        "title": doc.title,
        "start": doc.start_date.isoformat(),
        "end": doc.end_date.isoformat(),
        "daysCount": (doc.end_date - doc.start_date).days + 1,
        "timeslot_duration": "00:05",
        "time_zone_name": doc.time_zone,
        "rooms": [
            {"name": name, "guid": str(uuid.uuid5(_ROOM_NAMESPACE, f"{acronym}/{name}"))}
            for name in room_names
        ],
        # The schema's Conference allows no `languages` key; `meta` is its open bag.
        "meta": {"languages": list(doc.languages)},
        "days": days,
    }
    if doc.url:
        conference["url"] = doc.url
    result: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "schedule": {"version": "summitcast", "conference": conference},
    }
    if doc.generator:
        result["generator"] = {"name": doc.generator}
    return result


def _event(
    item: ScheduleItem,
    room: str,
    acronym: str,
    zone: ZoneInfo,
    people: dict[str, SchedulePerson],
) -> dict[str, Any]:
    local = item.start.astimezone(zone)
    external_id = export_id(item)
    event: dict[str, Any] = {
        "id": external_id,
        "guid": item.guid,
        "date": local.isoformat(),
        "start": local.strftime("%H:%M"),
        "duration": clock(item.duration_s),
        "room": room,
        "slug": event_slug(acronym, external_id, item.title),
        "url": item.url,
        "title": item.title,
        "subtitle": item.subtitle,
        "track": item.track,
        "type": item.type or item.kind,
        "language": item.language,
        "abstract": item.abstract,
        "description": item.description,
        "persons": [_person(people[key]) for key in item.person_keys],
        "links": [],
        "attachments": [],
    }
    if item.do_not_record:
        # The schema types this as a string; readers that test truthiness see "true" as set.
        event["do_not_record"] = "true"
    return event


def _person(person: SchedulePerson) -> dict[str, Any]:
    # Only `name`, never `public_name` too: with an `id` both would match the schema's
    # oneOf (FrabPerson, PretalxPerson) and the person would be invalid.
    entry: dict[str, Any] = {"name": person.name}
    if person.guid:
        entry["guid"] = person.guid
    if person.external_id is not None:
        entry["id"] = person.external_id
    entry["biography"] = person.biography
    if person.country:
        entry["country"] = person.country
    return entry
