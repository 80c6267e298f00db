"""The audit trail: approvals and settings logged with their author, read back a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.domain.programme import ItemStatus
from summitcast.errors import ConflictError, ValidationError
from summitcast.services import audit_trail, locations, programme, speakers
from summitcast.services.accounts import Actor
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import AuditEvent, Location, Summit
from tests.conftest import TEST_LINKS, make_summit, make_user

pytestmark = pytest.mark.integration

START = datetime(2027, 7, 17, 10, 0, tzinfo=UTC)


def _summit(db: object, slug: str = "test-summit") -> Summit:
    return programme.get_summit(db, slug)  # type: ignore[arg-type]


def _location(database: Database, slug: str = "test-summit", label: str = "Hall") -> int:
    with database.session() as db:
        return locations.register_location(
            db,
            _summit(db, slug),
            LocationInput(label=label, country="FR"),
            at_risk=frozenset(),
            links=TEST_LINKS,
        ).id


def _trail(database: Database, slug: str = "test-summit") -> list[tuple[int | None, str, str]]:
    with database.session() as db:
        return [
            (e.user_id, e.action, e.subject) for e in audit_trail.events_of(db, _summit(db, slug))
        ]


def _actor(database: Database, email: str = "org@example.org") -> Actor:
    return Actor(user_id=make_user(database, email).id, is_admin=False)


def _ready_item(database: Database) -> int:
    with database.session() as db:
        session = programme.add_session(
            db,
            _summit(db),
            programme.SessionInput(
                title="Opening", planned_start=START, planned_end=START + timedelta(hours=1)
            ),
        )
        return programme.add_item(
            db, session, programme.ItemInput(title="Keynote", status=ItemStatus.READY)
        ).id


def test_approve_selected_logs_each_location_with_its_author(database: Database) -> None:
    make_summit(database)
    one, two, done = (_location(database, label=f"Hall {n}") for n in range(3))
    actor = _actor(database)
    with database.session() as db:
        locations.approve_location(db, db.get(Location, done), actor)  # type: ignore[arg-type]

    with database.session() as db:
        locations.approve_selected(db, _summit(db), [one, two, done], actor)

    assert _trail(database) == [
        (actor.user_id, "location.approved", f"location:{done}"),
        (actor.user_id, "location.approved", f"location:{one}"),
        (actor.user_id, "location.approved", f"location:{two}"),
    ]


def test_set_auto_approve_logs_changes_only(database: Database) -> None:
    summit = make_summit(database)
    actor = _actor(database)

    with database.session() as db:
        locations.set_auto_approve(db, _summit(db), False, actor)  # already off: nothing to log
        locations.set_auto_approve(db, _summit(db), True, actor)
        locations.set_auto_approve(db, _summit(db), True, actor)
        locations.set_auto_approve(db, _summit(db), False, actor)

    assert _trail(database) == [
        (actor.user_id, "locations.auto_approve_on", f"summit:{summit.id}"),
        (actor.user_id, "locations.auto_approve_off", f"summit:{summit.id}"),
    ]


def test_item_approval_and_retake_are_logged_without_the_reason(database: Database) -> None:
    make_summit(database)
    item_id = _ready_item(database)
    actor = _actor(database)

    with database.session() as db:
        item = programme.get_item(db, _summit(db), item_id)
        speakers.approve_item(db, item, actor=actor)
        speakers.ask_new_take(db, item, "The sound is too quiet at 03:10", actor=actor)
        stored = [(e.action, e.subject) for e in db.query(AuditEvent)]

    assert _trail(database) == [
        (actor.user_id, "item.approved", f"item:{item_id}"),
        (actor.user_id, "item.retake_requested", f"item:{item_id}"),
    ]
    assert not any("quiet" in action + subject for action, subject in stored)


def test_refused_item_approval_logs_nothing(database: Database) -> None:
    make_summit(database)
    item_id = _ready_item(database)
    actor = _actor(database)
    with database.session() as db:
        item = programme.get_item(db, _summit(db), item_id)
        item.status = ItemStatus.MISSING.value

    with database.session() as db, pytest.raises(ConflictError, match="Only a ready item"):
        speakers.approve_item(db, programme.get_item(db, _summit(db), item_id), actor=actor)

    assert _trail(database) == []


def test_record_event_refuses_an_unknown_kind(database: Database) -> None:
    make_summit(database)

    with database.session() as db, pytest.raises(ValueError, match="not a kind of audit event"):
        audit_trail.record_event(db, _summit(db), None, "location.teleported", "location:1")


def test_page_of_events_newest_first_with_names_and_authors(database: Database) -> None:
    make_summit(database)
    hall = _location(database, label="Town hall")
    actor = _actor(database)
    with database.session() as db:
        location = db.get(Location, hall)
        locations.approve_location(db, location, actor)  # type: ignore[arg-type]
        locations.reissue_link(db, location, None, TEST_LINKS)  # type: ignore[arg-type]
        locations.revoke_location(db, location, actor)  # type: ignore[arg-type]

    with database.session() as db:
        page = audit_trail.page_of_events(db, _summit(db))

    assert [(e.kind, e.subject_name, e.author) for e in page.entries] == [
        ("location.revoked", "Town hall", "org"),
        ("location.link_reissued", "Town hall", ""),
        ("location.approved", "Town hall", "org"),
    ]
    assert (page.page.number, page.pages, page.total) == (1, 1, 3)


def test_page_of_events_pages_and_filters_by_kind(database: Database) -> None:
    make_summit(database)
    ids = [_location(database, label=f"Hall {n}") for n in range(audit_trail.PAGE_SIZE + 5)]
    with database.session() as db:
        locations.approve_selected(db, _summit(db), ids)
        locations.revoke_location(db, db.get(Location, ids[0]))  # type: ignore[arg-type]

    with database.session() as db:
        first = audit_trail.page_of_events(db, _summit(db), kind="location.approved")
        second = audit_trail.page_of_events(db, _summit(db), kind="location.approved", page=2)
        revoked = audit_trail.page_of_events(db, _summit(db), kind="location.revoked")
        beyond = audit_trail.page_of_events(db, _summit(db), page=3)
        oldest = audit_trail.page_of_events(db, _summit(db), sort="oldest", size=100)

    assert [e.subject for e in first.entries] == [f"location:{i}" for i in reversed(ids[5:])]
    assert [e.subject for e in second.entries] == [f"location:{i}" for i in reversed(ids[:5])]
    assert (first.pages, first.total) == (2, len(ids))
    assert [e.subject for e in revoked.entries] == [f"location:{ids[0]}"]
    # Past the end (a bookmark of a list that got shorter): the last page, not an empty one.
    assert beyond.page.number == 2
    assert [e.subject for e in beyond.entries][-1] == f"location:{ids[0]}"
    assert [e.subject for e in oldest.entries] == [
        *(f"location:{i}" for i in ids),
        f"location:{ids[0]}",
    ]


def test_page_of_events_keeps_to_its_summit(database: Database) -> None:
    make_summit(database, "one")
    make_summit(database, "two")
    theirs = _location(database, "two", label="Their hall")
    with database.session() as db:
        # A forged subject naming another summit's location must not reveal its label.
        audit_trail.record_event(
            db, _summit(db, "one"), None, "location.revoked", f"location:{theirs}"
        )
        locations.approve_location(db, db.get(Location, theirs))  # type: ignore[arg-type]

    with database.session() as db:
        mine = audit_trail.page_of_events(db, _summit(db, "one"))

    assert [(e.kind, e.subject_name) for e in mine.entries] == [("location.revoked", "")]


@pytest.mark.parametrize(
    ("kind", "page", "field"),
    [("location.teleported", 1, "kind"), ("", 0, "page"), ("", audit_trail.MAX_PAGE + 1, "page")],
)
def test_page_of_events_refuses_bad_input(
    database: Database, kind: str, page: int, field: str
) -> None:
    make_summit(database)

    with database.session() as db, pytest.raises(ValidationError) as caught:
        audit_trail.page_of_events(db, _summit(db), kind=kind, page=page)

    assert caught.value.field == field
