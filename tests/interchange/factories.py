"""Small schedule documents built in code, for export and round-trip tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from summitcast.interchange import ScheduleDocument, ScheduleItem, SchedulePerson, ScheduleSession


def make_document(time_zone: str = "Europe/Berlin") -> ScheduleDocument:
    """A two-day summit with speakers in several scripts and every item kind."""
    zone = ZoneInfo(time_zone)
    people = (
        SchedulePerson(
            key="0f0e0d0c-0b0a-4909-8807-060504030201",
            guid="0f0e0d0c-0b0a-4909-8807-060504030201",
            external_id=7,
            name="مريم الزهراء",
            biography="Line one\r\nline two\twith tab & <angle>",
            country="EG",
        ),
        SchedulePerson(
            key="id:8", guid=None, external_id=8, name="李华", biography="", country="TW"
        ),
        SchedulePerson(
            key="name:ольга иванова",
            guid=None,
            external_id=None,
            name="Ольга Иванова",
            biography='Says "hello"',
            country=None,
        ),
    )

    def item(number: int, start: datetime, kind: str, event_type: str, keys: tuple[str, ...]):
        return ScheduleItem(
            guid=f"00000000-0000-4000-8000-{number:012d}",
            external_id=number,
            title=f"Talk {number} — गुफ़्तगू",
            subtitle="",
            kind=kind,
            type=event_type,
            start=start,
            duration_s=1500,
            language="ar" if number % 2 else "zh",
            abstract="Short & sweet",
            description="Para one.\r\n\r\nPara two <b>bold</b>.",
            track="Voices",
            do_not_record=number == 2,
            url=f"https://summit.example.org/talk/{number}/",
            person_keys=keys,
        )

    day1 = datetime(2025, 7, 17, 9, 0, tzinfo=zone)
    day2 = datetime(2025, 7, 18, 9, 0, tzinfo=zone)
    first = (
        item(1, day1, "speech", "lecture", (people[0].key, people[1].key)),
        item(2, day1 + timedelta(minutes=30), "video", "video", (people[2].key,)),
        item(3, day1 + timedelta(hours=15, minutes=30), "break", "break", ()),
    )
    second = (item(4, day2, "live", "live", (people[1].key,)),)
    sessions = (
        ScheduleSession(
            key="2025-07-17/Plenary",
            day_date=date(2025, 7, 17),
            room="Plenary",
            title="Plenary",
            start=first[0].start,
            end=first[2].start + timedelta(seconds=1500),
            items=first,
        ),
        ScheduleSession(
            key="2025-07-18/Plenary",
            day_date=date(2025, 7, 18),
            room="Plenary",
            title="Plenary",
            start=second[0].start,
            end=second[0].start + timedelta(seconds=1500),
            items=second,
        ),
    )
    return ScheduleDocument(
        title="Global Summit",
        acronym="summit2025",
        time_zone=time_zone,
        start_date=date(2025, 7, 17),
        end_date=date(2025, 7, 18),
        languages=("ar", "zh"),
        sessions=sessions,
        people=people,
        url="https://summit.example.org/",
        generator="summitcast 0.1",
    )
