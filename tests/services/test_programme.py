"""Programme use cases on SQLite and PostgreSQL: sessions, items, order, speakers, warnings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from summitcast.domain.programme import ItemKind
from summitcast.errors import ConflictError, NotFoundError, ValidationError
from summitcast.services import programme
from summitcast.storage.database import Database
from tests.conftest import make_summit

pytestmark = pytest.mark.integration


def at(hour: int, minute: int = 0, day: int = 17) -> datetime:
    return datetime(2027, 7, day, hour, minute, tzinfo=UTC)


def _session(database: Database, slug: str = "test-summit", title: str = "Opening") -> int:
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        data = programme.SessionInput(title=title, planned_start=at(16), planned_end=at(17))
        return programme.add_session(db, summit, data).id


def _items(database: Database, session_id: int, titles: list[str]) -> list[int]:
    ids = []
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        session = programme.get_session(db, summit, session_id)
        for title in titles:
            data = programme.ItemInput(title=title, planned_duration_s=600)
            ids.append(programme.add_item(db, session, data).id)
    return ids


def _titles(database: Database, session_id: int) -> list[str]:
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        return [i.title for i in programme.get_session(db, summit, session_id).items]


def test_create_summit_refuses_taken_slug(database: Database) -> None:
    make_summit(database)
    with pytest.raises(ConflictError, match="taken"):
        make_summit(database)


def test_create_summit_refuses_unknown_zone(database: Database) -> None:
    with pytest.raises(ValidationError, match="Atlantis/Capital"):
        make_summit(database, time_zone="Atlantis/Capital")


def test_add_session_files_it_under_local_day(database: Database) -> None:
    make_summit(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        # 23:30 UTC on the 17th is already the 18th in Berlin.
        data = programme.SessionInput(
            title="Late", planned_start=at(23, 30), planned_end=at(23, 59)
        )
        session = programme.add_session(db, summit, data)
        assert session.day.date.isoformat() == "2027-07-18"


def test_add_session_outside_summit_dates_is_refused(database: Database) -> None:
    make_summit(database)
    with pytest.raises(ValidationError, match="outside the summit"), database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        data = programme.SessionInput(
            title="Too late", planned_start=at(10, day=25), planned_end=at(11, day=25)
        )
        programme.add_session(db, summit, data)


def test_items_append_in_order_and_move(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    _first, _second, third = _items(database, session_id, ["A", "B", "C"])

    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        programme.move_item(db, programme.get_item(db, summit, third), 0)

    assert _titles(database, session_id) == ["C", "A", "B"]


def test_set_order_refuses_partial_list_and_keeps_order(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    first, second, _third = _items(database, session_id, ["A", "B", "C"])

    with pytest.raises(ValidationError, match="exactly once"), database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        programme.set_order(db, programme.get_session(db, summit, session_id), [second, first])

    assert _titles(database, session_id) == ["A", "B", "C"]


def test_delete_item_closes_gap_in_positions(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    _a, b, _c = _items(database, session_id, ["A", "B", "C"])

    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        programme.delete_item(db, programme.get_item(db, summit, b))
        positions = [i.position for i in programme.get_session(db, summit, session_id).items]

    assert positions == [0, 1]


def test_item_of_other_summit_is_not_found(database: Database) -> None:
    make_summit(database)
    make_summit(database, "other-summit")
    session_id = _session(database)
    (item_id,) = _items(database, session_id, ["A"])

    with pytest.raises(NotFoundError), database.session() as db:
        programme.get_item(db, programme.get_summit(db, "other-summit"), item_id)


def test_speakers_in_any_script_link_to_items_in_order(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    (item_id,) = _items(database, session_id, ["Panel"])
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        names = ["ليلى الحسيني", "陈晓岚", "Оксана Величко"]
        ids = [
            programme.add_speaker(db, summit, programme.SpeakerInput(name=n, country="jo")).id
            for n in names
        ]
        item = programme.set_item_speakers(
            db, programme.get_item(db, summit, item_id), list(reversed(ids))
        )
        linked = [link.speaker.name for link in item.speaker_links]
        country = programme.get_speaker(db, summit, ids[0]).country

    assert linked == list(reversed(names))
    assert country == "JO"


def test_speaker_with_unknown_country_is_refused(database: Database) -> None:
    make_summit(database)
    with pytest.raises(ValidationError, match="ISO 3166"), database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        programme.add_speaker(db, summit, programme.SpeakerInput(name="X", country="XX"))


def test_set_item_speakers_refuses_speaker_of_other_summit(database: Database) -> None:
    make_summit(database)
    make_summit(database, "other-summit")
    session_id = _session(database)
    (item_id,) = _items(database, session_id, ["Talk"])
    with database.session() as db:
        other = programme.get_summit(db, "other-summit")
        stranger = programme.add_speaker(db, other, programme.SpeakerInput(name="Stranger")).id

    with pytest.raises(ValidationError, match="No speaker"), database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        programme.set_item_speakers(db, programme.get_item(db, summit, item_id), [stranger])


def test_session_warnings_report_overlap_and_overrun(database: Database) -> None:
    make_summit(database)
    first = _session(database, title="First")
    second = _session(database, title="Second")
    _items(database, first, ["A"] * 7)  # 70 minutes in a 60-minute window

    with database.session() as db:
        warnings = programme.session_warnings(programme.get_summit(db, "test-summit"))

    assert warnings[first] == [
        "Overlaps 'Second': one broadcast cannot air both.",
        "Items run 10:00 past the planned end.",
    ]
    assert warnings[second] == ["Overlaps 'First': one broadcast cannot air both."]


def test_timed_items_lay_out_from_session_start(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    _items(database, session_id, ["A", "B"])
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        timed = programme.timed_items(programme.get_session(db, summit, session_id))

    assert [(i.title, t.start) for i, t in timed] == [("A", at(16)), ("B", at(16, 10))]


def test_update_summit_refuses_dates_that_orphan_sessions(database: Database) -> None:
    make_summit(database)
    _session(database)
    with pytest.raises(ValidationError, match="outside the new dates"), database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        data = programme.SummitInput(
            slug="test-summit",
            title="T",
            time_zone="Europe/Berlin",
            start_date=at(0, day=18).date(),
            end_date=at(0, day=20).date(),
        )
        programme.update_summit(db, summit, data)


def test_item_kinds_round_trip(database: Database) -> None:
    make_summit(database)
    session_id = _session(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        session = programme.get_session(db, summit, session_id)
        for kind in ItemKind:
            programme.add_item(db, session, programme.ItemInput(title=kind.value, kind=kind))
        kinds = [i.kind for i in programme.get_session(db, summit, session_id).items]
    assert kinds == [k.value for k in ItemKind]
