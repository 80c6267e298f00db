"""iCalendar (RFC 5545) export of a schedule: one VEVENT per item."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event

from summitcast.errors import NotFoundError
from summitcast.interchange.assembly import item_end
from summitcast.interchange.model import ScheduleDocument, ScheduleItem, SchedulePerson


def export_ical(
    doc: ScheduleDocument, session_key: str | None = None, *, stamp: datetime | None = None
) -> bytes:
    """The whole document, or one session, as an iCalendar file with times in UTC."""
    sessions = doc.sessions
    if session_key is not None:
        sessions = tuple(session for session in doc.sessions if session.key == session_key)
        if not sessions:
            raise NotFoundError(f"no session {session_key!r} in schedule {doc.acronym!r}")
    # DTSTAMP is required by RFC 5545; a fixed `stamp` makes the output reproducible.
    stamp = (stamp or datetime.now(UTC)).astimezone(UTC)
    people = {person.key: person for person in doc.people}
    calendar = Calendar()
    calendar.add("prodid", "-//summitcast//schedule export//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", doc.title)
    calendar.add("x-wr-timezone", doc.time_zone)
    for session in sessions:
        for item in session.items:
            calendar.add_component(_vevent(item, session.room, people, stamp))
    data: bytes = calendar.to_ical()
    return data


def _vevent(
    item: ScheduleItem, room: str, people: dict[str, SchedulePerson], stamp: datetime
) -> Event:
    event = Event()
    event.add("uid", item.guid)
    event.add("dtstamp", stamp)
    event.add("dtstart", item.start.astimezone(UTC))
    event.add("dtend", item_end(item).astimezone(UTC))
    event.add("summary", item.title)
    speakers = ", ".join(people[key].name for key in item.person_keys)
    text = "\n\n".join(
        part for part in (item.subtitle, speakers, item.abstract, item.description) if part
    )
    if text:
        event.add("description", text)
    event.add("location", room)
    if item.track:
        event.add("categories", [item.track])
    if item.url:
        event.add("url", item.url)
    return event
