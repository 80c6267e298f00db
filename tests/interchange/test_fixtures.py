"""Real exports read into the model with the counts their raw files have."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from summitcast.interchange import ScheduleDocument, parse_frab_json, parse_frab_xml
from tests.interchange.counting import FIXTURES, Counts, count_json, count_xml


def _counts(doc: ScheduleDocument) -> Counts:
    return Counts(
        days=len({session.day_date for session in doc.sessions}),
        sessions=len(doc.sessions),
        items=sum(len(session.items) for session in doc.sessions),
        people=len(doc.people),
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pretalx-democon-day1.json", Counts(days=1, sessions=2, items=12, people=12)),
        ("frab-camp2019-trimmed.json", Counts(days=1, sessions=1, items=5, people=8)),
    ],
)
def test_parse_frab_json_real_export_counts_match_raw_file(name: str, expected: Counts) -> None:
    doc = parse_frab_json((FIXTURES / name).read_bytes())

    assert count_json(name) == expected
    assert _counts(doc) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("frab-31c3-trimmed.xml", Counts(days=1, sessions=1, items=5, people=7)),
        ("summit-non-latin.xml", Counts(days=2, sessions=3, items=7, people=7)),
    ],
)
def test_parse_frab_xml_fixture_counts_match_raw_file(name: str, expected: Counts) -> None:
    doc = parse_frab_xml((FIXTURES / name).read_bytes())

    assert count_xml(name) == expected
    assert _counts(doc) == expected


@pytest.mark.unit
def test_parse_frab_json_pretalx_date_wins_over_clock_and_zone() -> None:
    # democon says time_zone_name UTC but dates in +01:00 and start "09:00".
    doc = parse_frab_json((FIXTURES / "pretalx-democon-day1.json").read_bytes())
    gray = doc.sessions[0]

    assert gray.key == "2020-12-14/Gray Room"
    assert gray.items[0].start == datetime(2020, 12, 14, 8, 0, tzinfo=UTC)
    assert gray.items[0].duration_s == 1800
    assert gray.items[0].type == "Talk"
    assert gray.items[0].kind == "speech"
    assert [item.external_id for item in gray.items] == [25, 26, 33, 37, 43, 55, 57, 59, 16]
    assert doc.sessions[1].items[2].do_not_record is True
    assert doc.sessions[1].items[1].person_keys == ("id:16", "id:21")


@pytest.mark.unit
def test_parse_frab_json_frab_export_keeps_texts_and_people() -> None:
    doc = parse_frab_json((FIXTURES / "frab-camp2019-trimmed.json").read_bytes())
    item = doc.sessions[0].items[3]

    assert doc.acronym == "Camp2019"
    assert doc.time_zone == "Europe/Berlin"
    assert (doc.start_date, doc.end_date) == (date(2019, 8, 21), date(2019, 8, 26))
    assert item.track == "Ethics, Society & Politics"
    assert item.start == datetime(2019, 8, 21, 14, 0, tzinfo=UTC)
    names = {person.key: person.name for person in doc.people}
    assert [names[key] for key in item.person_keys] == [
        "Chloé Berthélémy (EDRi)",
        "Andreea Belu (EDRi)",
    ]
    assert names["id:4376"] == 'Sean "xobs" Cross'


@pytest.mark.unit
def test_parse_frab_xml_31c3_maps_short_guids_to_stable_uuids() -> None:
    data = (FIXTURES / "frab-31c3-trimmed.xml").read_bytes()

    first = parse_frab_xml(data)
    again = parse_frab_xml(data)

    guids = [item.guid for item in first.sessions[0].items]
    assert guids[:2] == [
        "29aecfd7-2e44-4f49-ab86-29b5e0877325",
        "8c4e647f-813e-41ef-b05b-65469dd841c3",
    ]
    assert len(set(guids)) == 5
    assert [item.guid for item in again.sessions[0].items] == guids
    # No time_zone_name in this file: UTC, with instants taken from the +01:00 dates.
    assert first.time_zone == "UTC"
    assert first.sessions[0].items[0].start == datetime(2014, 12, 27, 10, 0, tzinfo=UTC)
    assert first.sessions[0].items[2].track == "Ethics, Society & Politics"


@pytest.mark.unit
def test_parse_frab_xml_non_latin_names_kinds_and_night_events() -> None:
    doc = parse_frab_xml((FIXTURES / "summit-non-latin.xml").read_bytes())
    ist = timezone(timedelta(hours=5, minutes=30))
    main, studio, closing = doc.sessions

    assert [person.name for person in doc.people] == [
        "ليلى الحسيني",
        "王小明",
        "Анна Петрова",
        "अनीता शर्मा",
        "ሰላም ተስፋዬ",
        "Νίκος Παπαδόπουλος",
        "נועה לוי",
    ]
    assert [item.kind for item in main.items] == ["speech", "video", "break", "live"]
    assert [item.kind for item in studio.items] == ["speech", "slate"]
    assert closing.items[0].kind == "speech"
    # Listed under 17 July, after midnight: from <date>, and from day start for bare HH:MM.
    assert main.items[3].start == datetime(2025, 7, 18, 0, 30, tzinfo=ist)
    assert studio.items[1].start == datetime(2025, 7, 18, 1, 15, tzinfo=ist)
    assert main.day_date == date(2025, 7, 17)
    assert main.end == datetime(2025, 7, 18, 1, 15, tzinfo=ist)
    assert main.items[3].duration_s == 2700
    assert main.items[3].do_not_record is True
    assert main.items[3].person_keys == ("id:4", "id:2")
    assert main.items[0].description == "Line one.\nLine two & more."
    assert doc.languages == ("en", "ru", "hi", "am", "he")
    assert doc.generator == "summitcast-fixture 1"
    assert closing.items[0].person_keys == (
        "name:נועה לוי",
        "9a1d2c3e-0000-4000-8000-000000000001",
        "id:3",
    )
