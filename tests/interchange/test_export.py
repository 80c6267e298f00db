"""Exports validate against the shipped c3voc schema and read back to the same document."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import jsonschema
import pytest
from icalendar import Calendar

from summitcast.errors import NotFoundError
from summitcast.interchange import (
    ScheduleDocument,
    export_frab_json,
    export_frab_xml,
    export_ical,
    load_schema,
    parse_frab_json,
    parse_frab_xml,
)
from tests.interchange.counting import FIXTURES
from tests.interchange.factories import make_document

REAL = {
    "pretalx-democon-day1.json": parse_frab_json,
    "frab-camp2019-trimmed.json": parse_frab_json,
    "frab-31c3-trimmed.xml": parse_frab_xml,
    "summit-non-latin.xml": parse_frab_xml,
}


def _documents() -> list[ScheduleDocument]:
    parsed = [read((FIXTURES / name).read_bytes()) for name, read in REAL.items()]
    return [make_document(), make_document("Asia/Kolkata"), make_document("UTC"), *parsed]


def _schema_errors(exported: dict[str, object]) -> list[str]:
    # uuid and date formats are checked; date-time/uri checkers need extra packages.
    validator = jsonschema.Draft6Validator(load_schema(), format_checker=jsonschema.FormatChecker())
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(exported)]


@pytest.mark.unit
@pytest.mark.parametrize("doc", _documents(), ids=lambda doc: doc.acronym)
def test_export_frab_json_document_validates_against_shipped_schema(doc: ScheduleDocument) -> None:
    exported = export_frab_json(doc)

    assert _schema_errors(exported) == []
    for day in exported["schedule"]["conference"]["days"]:  # type: ignore[index]
        for events in day["rooms"].values():
            for event in events:
                assert datetime.fromisoformat(event["date"]).tzinfo is not None


@pytest.mark.unit
def test_export_frab_json_real_pretalx_file_itself_fails_schema_on_boolean_flag() -> None:
    # Documents a real-world gap: pretalx writes do_not_record as a boolean.
    raw = json.loads((FIXTURES / "pretalx-democon-day1.json").read_text("utf-8"))

    errors = _schema_errors(raw)

    assert errors[0].endswith("False is not of type 'string', 'null'")


@pytest.mark.unit
@pytest.mark.parametrize("doc", _documents(), ids=lambda doc: doc.acronym)
def test_parse_frab_json_of_export_round_trips(doc: ScheduleDocument) -> None:
    exported = json.dumps(export_frab_json(doc), ensure_ascii=False).encode("utf-8")

    again = parse_frab_json(exported)

    # The only change we make on purpose: acronyms are lower-cased for the schema pattern.
    assert again == dataclasses.replace(doc, acronym=doc.acronym.lower())


@pytest.mark.unit
@pytest.mark.parametrize("doc", _documents(), ids=lambda doc: doc.acronym)
def test_parse_frab_xml_of_export_round_trips(doc: ScheduleDocument) -> None:
    again = parse_frab_xml(export_frab_xml(doc))

    assert again == doc


@pytest.mark.unit
def test_export_frab_json_person_without_public_name_is_pretalx_shaped() -> None:
    exported = export_frab_json(make_document())
    day = exported["schedule"]["conference"]["days"][0]

    assert day["rooms"]["Plenary"][0]["persons"] == [
        {
            "name": "مريم الزهراء",
            "guid": "0f0e0d0c-0b0a-4909-8807-060504030201",
            "id": 7,
            "biography": "Line one\r\nline two\twith tab & <angle>",
            "country": "EG",
        },
        {"name": "李华", "id": 8, "biography": "", "country": "TW"},
    ]
    assert day["rooms"]["Plenary"][0]["slug"] == "summit2025-1-talk-1"
    assert day["rooms"]["Plenary"][1]["do_not_record"] == "true"


@pytest.mark.unit
def test_export_ical_whole_document_one_vevent_per_item_in_utc() -> None:
    doc = make_document()
    stamp = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)

    calendar = Calendar.from_ical(export_ical(doc, stamp=stamp))

    events = calendar.walk("VEVENT")
    assert [str(event["UID"]) for event in events] == [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003",
        "00000000-0000-4000-8000-000000000004",
    ]
    assert events[0].decoded("DTSTART") == datetime(2025, 7, 17, 7, 0, tzinfo=UTC)
    assert events[0].decoded("DTEND") == datetime(2025, 7, 17, 7, 25, tzinfo=UTC)
    assert str(events[0]["SUMMARY"]) == "Talk 1 — गुफ़्तगू"
    assert str(events[0]["DESCRIPTION"]).startswith("مريم الزهراء, 李华\n\nShort & sweet")
    assert str(events[0]["LOCATION"]) == "Plenary"


@pytest.mark.unit
def test_export_ical_one_session_only_has_its_items() -> None:
    doc = make_document()

    data = export_ical(doc, "2025-07-18/Plenary", stamp=datetime(2025, 7, 1, tzinfo=UTC))

    events = Calendar.from_ical(data).walk("VEVENT")
    assert [str(event["UID"]) for event in events] == ["00000000-0000-4000-8000-000000000004"]
    assert b"DTSTAMP:20250701T000000Z" in data


@pytest.mark.unit
def test_export_ical_unknown_session_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no session 'nope'"):
        export_ical(make_document(), "nope")
