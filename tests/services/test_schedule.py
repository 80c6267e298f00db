"""Schedule import and export against real pretalx/frab files, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import func, select

from summitcast.errors import ImportFormatError
from summitcast.interchange.frab_json import load_schema
from summitcast.services import programme, schedule
from summitcast.storage.database import Database
from summitcast.storage.tables import Day, Item, ItemSpeaker, Session, Speaker, Summit
from tests.conftest import make_summit
from tests.interchange.counting import FIXTURES, count_json, count_xml

pytestmark = pytest.mark.integration
LIMIT = 20 * 1024 * 1024


def _snapshot(database: Database) -> dict[str, object]:
    """Every stored row that an import could touch, as comparable tuples."""
    with database.session() as db:
        return {
            "summits": db.execute(
                select(Summit.slug, Summit.start_date, Summit.end_date, Summit.languages)
            ).all(),
            "days": db.execute(select(Day.summit_id, Day.date)).all(),
            "sessions": db.execute(
                select(Session.key, Session.title, Session.planned_start, Session.planned_end)
            ).all(),
            "items": db.execute(
                select(
                    Item.guid,
                    Item.session_id,
                    Item.position,
                    Item.title,
                    Item.kind,
                    Item.planned_duration_s,
                ).order_by(Item.guid)
            ).all(),
            "speakers": db.execute(select(Speaker.guid, Speaker.name).order_by(Speaker.guid)).all(),
            "links": db.execute(
                select(ItemSpeaker.item_id, ItemSpeaker.speaker_id, ItemSpeaker.position).order_by(
                    ItemSpeaker.item_id, ItemSpeaker.speaker_id
                )
            ).all(),
        }


def _import(database: Database, slug: str, name: str) -> schedule.ImportResult:
    data = (FIXTURES / name).read_bytes()
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        return schedule.import_bytes(db, summit, data, filename=name, max_bytes=LIMIT)


def _stored_counts(database: Database, slug: str) -> tuple[int, int, int, int]:
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        days = db.scalar(
            select(func.count(func.distinct(Session.day_id))).where(Session.summit_id == summit.id)
        )
        sessions = db.scalar(select(func.count()).where(Session.summit_id == summit.id))
        items = db.scalar(
            select(func.count()).where(Item.summit_id == summit.id, Item.event_type != "gap")
        )
        speakers = db.scalar(select(func.count()).where(Speaker.summit_id == summit.id))
        return days or 0, sessions or 0, items or 0, speakers or 0


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("pretalx-democon-day1.json", count_json),
        ("frab-camp2019-trimmed.json", count_json),
        ("frab-31c3-trimmed.xml", count_xml),
        ("summit-non-latin.xml", count_xml),
    ],
)
def test_import_real_file_stores_exact_counts(database: Database, name: str, count) -> None:  # type: ignore[no-untyped-def]
    make_summit(database, "imported")
    expected = count(name)

    result = _import(database, "imported", name)

    assert (result.days, result.sessions, result.items, result.speakers) == (
        expected.days,
        expected.sessions,
        expected.items,
        expected.people,
    )
    assert _stored_counts(database, "imported") == (
        expected.days,
        expected.sessions,
        expected.items,
        expected.people,
    )


@pytest.mark.parametrize(
    "name", ["pretalx-democon-day1.json", "frab-31c3-trimmed.xml", "summit-non-latin.xml"]
)
def test_reimport_same_file_changes_nothing(database: Database, name: str) -> None:
    make_summit(database, "imported")
    _import(database, "imported", name)
    before = _snapshot(database)

    result = _import(database, "imported", name)

    assert _snapshot(database) == before
    assert (result.created, result.updated) == (0, 0)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_reimport_of_own_export_changes_nothing(database: Database, fmt: str) -> None:
    make_summit(database, "imported")
    _import(database, "imported", "pretalx-democon-day1.json")
    with database.session() as db:
        body, _ = schedule.export_summit(db, programme.get_summit(db, "imported"), fmt)
    before = _snapshot(database)

    with database.session() as db:
        summit = programme.get_summit(db, "imported")
        result = schedule.import_bytes(db, summit, body, filename=f"x.{fmt}", max_bytes=LIMIT)

    assert _snapshot(database) == before
    assert (result.created, result.updated) == (0, 0)


def test_export_json_validates_against_schema(database: Database) -> None:
    make_summit(database, "imported")
    _import(database, "imported", "summit-non-latin.xml")
    with database.session() as db:
        body, media_type = schedule.export_summit(db, programme.get_summit(db, "imported"), "json")

    document = json.loads(body)
    jsonschema.Draft6Validator(load_schema()).validate(document)
    assert media_type == "application/json"
    assert "ሰላም" in body.decode() or any("\u1200" <= ch <= "\u137f" for ch in body.decode())


def test_export_ics_of_one_session_lists_only_its_items(database: Database) -> None:
    make_summit(database, "imported")
    _import(database, "imported", "pretalx-democon-day1.json")
    with database.session() as db:
        summit = programme.get_summit(db, "imported")
        first = programme.programme_of(db, summit)[0]
        wanted = len([i for i in first.items if i.event_type != "gap"])
        body, media_type = schedule.export_summit(db, summit, "ics", session_id=first.id)

    assert media_type == "text/calendar"
    assert body.count(b"BEGIN:VEVENT") == wanted


BAD_INPUTS = {
    "broken-json": b'{"schedule": {"version": "1", "conference": ',
    "broken-xml": b"<schedule><conference><title>x</title></conference",
    "wrong-types": b'{"schedule": {"version": "1", "conference": {"title": "x", "acronym": "xxxx",'
    b' "days": "monday", "daysCount": 1, "start": "2027-07-17", "end": "2027-07-17",'
    b' "timeslot_duration": "00:15", "time_zone_name": "UTC"}}}',
    "unknown-zone": b'{"schedule": {"version": "1", "conference": {"title": "x", "acronym": "xxxx",'
    b' "days": [], "daysCount": 0, "start": "2027-07-17", "end": "2027-07-17",'
    b' "timeslot_duration": "00:15", "time_zone_name": "Mars/Olympus"}}}',
    "entity-bomb": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<schedule><version>&lol3;</version></schedule>",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_file_is_refused_and_nothing_changes(database: Database, case: str) -> None:
    make_summit(database, "imported")
    _import(database, "imported", "frab-31c3-trimmed.xml")
    before = _snapshot(database)

    with pytest.raises(ImportFormatError) as raised, database.session() as db:
        summit = programme.get_summit(db, "imported")
        schedule.import_bytes(db, summit, BAD_INPUTS[case], max_bytes=LIMIT)

    assert raised.value.message
    assert _snapshot(database) == before


def test_oversized_file_is_refused_before_parsing(database: Database) -> None:
    make_summit(database, "imported")
    with pytest.raises(ImportFormatError, match="at most 20 MiB"), database.session() as db:
        summit = programme.get_summit(db, "imported")
        schedule.import_bytes(db, summit, b" " * (50 * 1024 * 1024), max_bytes=LIMIT)


def test_import_into_new_slug_creates_summit_from_file(database: Database) -> None:
    data = (FIXTURES / "pretalx-democon-day1.json").read_bytes()
    with database.session() as db:
        summit, result = schedule.import_into_slug(db, "democon", data, max_bytes=LIMIT)
        title, zone = summit.title, summit.time_zone

    assert result.items == count_json("pretalx-democon-day1.json").items
    assert (title, zone) == ("DemoCon", "UTC")


def test_failed_import_midway_rolls_back_everything(database: Database) -> None:
    """A file that parses but breaks a rule during storing leaves no partial rows."""
    make_summit(database, "imported")
    before = _snapshot(database)
    text = (FIXTURES / "pretalx-democon-day1.json").read_text("utf-8")
    raw = json.loads(text)
    days = raw["schedule"]["conference"]["days"]
    room, events = next(iter(days[0]["rooms"].items()))
    events[-1]["duration"] = "30:00"  # 30 hours: parses, but no item may last that long
    data = json.dumps(raw).encode()

    with pytest.raises(Exception) as raised, database.session() as db:  # noqa: PT011
        summit = programme.get_summit(db, "imported")
        schedule.import_bytes(db, summit, data, max_bytes=LIMIT)

    assert "24 hours" in str(raised.value) or "duration" in str(raised.value)
    assert _snapshot(database) == before
    assert room


def test_fixture_folder_is_present() -> None:
    assert Path(FIXTURES / "README.md").is_file()
