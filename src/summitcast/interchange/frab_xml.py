"""The frab schedule.xml layout (frab, pretalx, pentabarf): reader and writer."""

from __future__ import annotations

import re

# Trees only: every document is parsed by defusedxml's DefusedXMLParser (bandit B405).
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from summitcast.errors import ImportFormatError
from summitcast.interchange.assembly import (
    DEFAULT_MAX_BYTES,
    ScheduleBuilder,
    canonical_guid,
    check_size,
    clock,
    describe,
    event_slug,
    export_acronym,
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

# XML 1.0 cannot carry these characters at all, not even as references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class _LineTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder that remembers the line each element started on, for messages."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[int, int] = {}
        self.parser: DefusedXMLParser | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        if self.parser is not None:
            self.lines[id(element)] = self.parser.parser.CurrentLineNumber
        return element


class _Reader:
    """Walks a parsed schedule.xml into a ScheduleBuilder, naming lines in its errors."""

    def __init__(self, lines: dict[int, int]) -> None:
        self._lines = lines

    def fail(self, element: ET.Element, message: str) -> ImportFormatError:
        """An error that names the line where `element` starts."""
        line = self._lines.get(id(element))
        where = f"XML line {line}" if line else "XML"
        return ImportFormatError(f"{where}: <{element.tag}> {message}", field=where)

    @contextmanager
    def at(self, element: ET.Element) -> Iterator[None]:
        """Give ImportFormatErrors raised inside the line of `element`."""
        try:
            yield
        except ImportFormatError as exc:
            raise self.fail(element, exc.message) from None

    @staticmethod
    def child_text(element: ET.Element, tag: str) -> str:
        """Text of the first child called `tag`, "" if there is none."""
        child = element.find(tag)
        return "" if child is None else (child.text or "")


def _refused(error: DefusedXmlException) -> str:
    """What a refused XML construct is, in words (defusedxml's own text is a Python repr)."""
    if isinstance(error, EntitiesForbidden):
        return f"declares the entity “{error.name}”"
    if isinstance(error, ExternalReferenceForbidden):
        return "refers to an external resource"
    if isinstance(error, DTDForbidden):
        return "declares a document type"
    return "uses an XML feature that is not accepted"


def parse_frab_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ScheduleDocument:
    """Read a frab schedule.xml; entity tricks are refused; failures are ImportFormatError."""
    check_size(data, max_bytes)
    target = _LineTreeBuilder()
    # No DTDs with entities, no external references: the billion-laughs and XXE shapes
    # stop here with an error instead of being expanded.
    parser = DefusedXMLParser(
        target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    target.parser = parser
    try:
        parser.feed(bytes(data))
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        raise ImportFormatError(
            f"XML line {line}, column {column + 1}: {reason}", field=f"XML line {line}"
        ) from None
    except DefusedXmlException as exc:
        line = parser.parser.CurrentLineNumber
        raise ImportFormatError(
            f"XML line {line}: {_refused(exc)}; schedules may not declare entities or "
            "reference external resources",
            field=f"XML line {line}",
        ) from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding expat does not know
        raise ImportFormatError(f"XML cannot be read: {exc}") from None
    except RecursionError:
        raise ImportFormatError("XML is nested too deeply to read") from None
    return _read_document(root, _Reader(target.lines))


def _read_document(root: ET.Element, reader: _Reader) -> ScheduleDocument:
    if root.tag != "schedule":
        raise reader.fail(root, "is not a frab schedule: the root element must be <schedule>")
    conference = root.find("conference")
    if conference is None:
        raise reader.fail(root, "has no <conference>")
    title = reader.child_text(conference, "title")
    if not title.strip():
        raise reader.fail(conference, "has no <title>")
    acronym = reader.child_text(conference, "acronym").strip()
    time_zone = reader.child_text(conference, "time_zone_name").strip() or "UTC"
    with reader.at(conference):
        zone = load_zone(time_zone, "time_zone_name")
        start_date = _optional_day(reader.child_text(conference, "start"), zone, "start")
        end_date = _optional_day(reader.child_text(conference, "end"), zone, "end")
    builder = ScheduleBuilder(zone=zone)
    for day in root.iter("day"):
        _read_day(builder, day, reader, acronym)
    languages_element = conference.find("languages")
    languages = (
        None
        if languages_element is None
        else tuple((item.text or "").strip() for item in languages_element.iter("language"))
    )
    generator = root.find("generator")
    generator_text = ""
    if generator is not None:
        parts = (generator.get("name", ""), generator.get("version", ""))
        generator_text = " ".join(part.strip() for part in parts if part.strip())
    with reader.at(conference):
        return builder.build(
            title=title,
            acronym=acronym,
            time_zone=time_zone,
            start_date=start_date,
            end_date=end_date,
            languages=languages,
            url=reader.child_text(conference, "url").strip() or None,
            generator=generator_text or None,
        )


def _optional_day(text: str, zone: ZoneInfo, where: str) -> date | None:
    """A conference start/end written as a date or a date-time, if given."""
    text = text.strip()
    if not text:
        return None
    if len(text) > 10:
        return parse_moment(text, zone, where).date()
    return parse_day(text, where)


def _read_day(builder: ScheduleBuilder, day: ET.Element, reader: _Reader, acronym: str) -> None:
    start_text = day.get("start", "").strip()
    day_start: datetime | None = None
    with reader.at(day):
        day_date = parse_day(day.get("date", ""), "date")
        if len(start_text) > 10:
            day_start = parse_moment(start_text, builder.zone, "start")
    for room in day.findall("room"):
        room_name = " ".join(room.get("name", "").split())
        if not room_name:
            raise reader.fail(room, "has no name attribute")
        for event in room.findall("event"):
            with reader.at(event):
                item = _read_event(builder, event, reader, acronym, day_date, day_start, room_name)
                builder.add_item(day_date, room_name, item, "guid")


def _read_event(
    builder: ScheduleBuilder,
    event: ET.Element,
    reader: _Reader,
    acronym: str,
    day_date: date,
    day_start: datetime | None,
    room: str,
) -> ScheduleItem:
    text = reader.child_text
    title = text(event, "title")
    external_id = parse_external_id(event.get("id", "").strip(), "id")
    start = resolve_start(
        day_date=day_date,
        day_start=day_start,
        start_text=text(event, "start") or None,
        date_text=text(event, "date").strip() or None,
        zone=builder.zone,
        where="date/start",
    )
    if event.find("duration") is None:
        raise ImportFormatError("duration: required element is missing")
    duration_s = parse_duration(text(event, "duration"), "duration")
    guid_text = event.get("guid", "").strip()
    if guid_text:
        guid = canonical_guid(guid_text)
    elif external_id is not None:
        guid = invented_guid(acronym, str(external_id))
    else:
        guid = invented_guid(acronym, room, start.isoformat(), title)
    person_keys = _read_persons(builder, event, reader)
    optout = event.find("recording/optout")
    flag_text = text(event, "do_not_record") if optout is None else (optout.text or "")
    event_type = text(event, "type").strip()
    return ScheduleItem(
        guid=guid,
        external_id=external_id,
        title=title,
        subtitle=text(event, "subtitle"),
        kind=kind_for_type(event_type),
        type=event_type,
        start=start,
        duration_s=duration_s,
        language=text(event, "language").strip(),
        abstract=text(event, "abstract"),
        description=text(event, "description"),
        track=text(event, "track"),
        do_not_record=parse_flag(flag_text, "recording/optout"),
        url=text(event, "url").strip(),
        person_keys=person_keys,
    )


def _read_persons(builder: ScheduleBuilder, event: ET.Element, reader: _Reader) -> tuple[str, ...]:
    """Add the event's speakers to the schedule; their keys in order, each once."""
    person_keys: list[str] = []
    # frab nests <person> in <persons>; some generators put bare <person> in the event.
    for person in [*event.findall("persons/person"), *event.findall("person")]:
        name = person.text or ""
        if not name.strip():
            continue
        person_id = person.get("id", "").strip()
        if person_id and not person_id.isdigit():
            raise reader.fail(person, f"id {describe(person_id)} is not a non-negative integer")
        with reader.at(person):
            key = builder.add_person(
                name=name,
                guid=person.get("guid") or None,
                external_id=int(person_id) if person_id else None,
                biography=person.get("biography", ""),
                country=person.get("country") or None,
                where="person",
            )
        if key not in person_keys:
            person_keys.append(key)
    return tuple(person_keys)


# --- writing -----------------------------------------------------------------------------


def _escape(text: str, *, attribute: bool = False) -> str:
    """XML-escape text; CR (and in attributes LF and TAB) as references so they survive."""
    text = _NOT_XML.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A raw CR is turned into LF by every XML parser; pretalx texts are full of CRLF.
    text = text.replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def _element(name: str, text: str, indent: str) -> str:
    return f"{indent}<{name}>{_escape(text)}</{name}>\n"


def _attributes(pairs: Mapping[str, str | None]) -> str:
    return "".join(
        f' {key}="{_escape(value, attribute=True)}"' for key, value in pairs.items() if value
    )


def export_frab_xml(doc: ScheduleDocument) -> bytes:
    """The document as a frab schedule.xml (UTF-8), readable back by parse_frab_xml."""
    zone = ZoneInfo(doc.time_zone)
    people = {person.key: person for person in doc.people}
    acronym = export_acronym(doc.acronym)
    out = ["<?xml version='1.0' encoding='utf-8'?>\n<schedule>\n"]
    if doc.generator:
        out.append(f"  <generator{_attributes({'name': doc.generator})}/>\n")
    out.append(_element("version", "summitcast", "  "))
    out.append("  <conference>\n")
    out.append(_element("acronym", doc.acronym, "    "))
    out.append(_element("title", doc.title, "    "))
    out.append(_element("start", doc.start_date.isoformat(), "    "))
    out.append(_element("end", doc.end_date.isoformat(), "    "))
    out.append(_element("days", str((doc.end_date - doc.start_date).days + 1), "    "))
    out.append(_element("timeslot_duration", "00:05", "    "))
    out.append(_element("time_zone_name", doc.time_zone, "    "))
    if doc.url:
        out.append(_element("url", doc.url, "    "))
    out.append("    <languages>\n")
    out.extend(_element("language", language, "      ") for language in doc.languages)
    out.append("    </languages>\n  </conference>\n")
    for index, (day_date, sessions) in enumerate(sessions_by_day(doc).items(), start=1):
        day_attributes = {
            "index": str(index),
            "date": day_date.isoformat(),
            "start": min(s.start for s in sessions).astimezone(zone).isoformat(),
            "end": max(s.end for s in sessions).astimezone(zone).isoformat(),
        }
        out.append(f"  <day{_attributes(day_attributes)}>\n")
        for session in sessions:
            out.append(f"    <room{_attributes({'name': session.room})}>\n")
            for item in session.items:
                out.append(_event(item, session.room, acronym, zone, people))
            out.append("    </room>\n")
        out.append("  </day>\n")
    out.append("</schedule>\n")
    return "".join(out).encode("utf-8")


def _event(
    item: ScheduleItem,
    room: str,
    acronym: str,
    zone: ZoneInfo,
    people: dict[str, SchedulePerson],
) -> str:
    local = item.start.astimezone(zone)
    pad = "        "
    ident = {"guid": item.guid, "id": None if item.external_id is None else str(item.external_id)}
    duration = clock(item.duration_s)
    if item.duration_s % 60:
        duration += f":{item.duration_s % 60:02d}"  # we read H:MM:SS back; keep the seconds
    slug_id = item.external_id if item.external_id is not None else 0
    parts = [
        f"      <event{_attributes(ident)}>\n",
        _element("date", local.isoformat(), pad),
        _element("start", local.strftime("%H:%M"), pad),
        _element("duration", duration, pad),
        _element("room", room, pad),
        _element("slug", event_slug(acronym, slug_id, item.title), pad),
        _element("url", item.url, pad),
        f"{pad}<recording>\n{pad}  <license></license>\n",
        _element("optout", "true" if item.do_not_record else "false", pad + "  "),
        f"{pad}</recording>\n",
        _element("title", item.title, pad),
        _element("subtitle", item.subtitle, pad),
        _element("track", item.track, pad),
        _element("type", item.type or item.kind, pad),
        _element("language", item.language, pad),
        _element("abstract", item.abstract, pad),
        _element("description", item.description, pad),
        f"{pad}<persons>\n",
    ]
    for key in item.person_keys:
        person = people[key]
        attributes = {
            "id": None if person.external_id is None else str(person.external_id),
            "guid": person.guid,
            "country": person.country,
            "biography": person.biography,
        }
        parts.append(f"{pad}  <person{_attributes(attributes)}>{_escape(person.name)}</person>\n")
    parts.append(f"{pad}</persons>\n{pad}<links></links>\n      </event>\n")
    return "".join(parts)
