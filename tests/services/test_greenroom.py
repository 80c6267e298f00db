"""Green room use cases on SQLite and PostgreSQL: feeds, keys, take and release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.programme import ItemStatus
from summitcast.errors import ConflictError, NotFoundError, PermissionDeniedError
from summitcast.services import audit_trail, broadcast, programme, speakers
from summitcast.services import greenroom as service
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Summit
from tests.conftest import grant, make_summit, make_user

pytestmark = pytest.mark.integration

START = datetime(2027, 7, 17, 16, 0, tzinfo=UTC)
MAX_FEEDS = Settings().greenroom_max_feeds


def _setup(database: Database) -> tuple[Actor, int, list[int], int]:
    """A producer, a session with two live speakers, and a speaker of no item.

    Returns (producer, session id, [speaker ids on the session], speaker id elsewhere).
    """
    summit = make_summit(database)
    producer = make_user(database, "producer@example.org")
    grant(database, producer, summit, Role.PRODUCER)
    with database.session() as db:
        row = programme.get_summit(db, "test-summit")
        session = programme.add_session(
            db,
            row,
            programme.SessionInput(
                title="Live", planned_start=START, planned_end=START + timedelta(hours=1)
            ),
        )
        item = programme.add_item(
            db, session, programme.ItemInput(title="Panel", status=ItemStatus.READY)
        )
        on_session = []
        for name in ("Ana", "Bo"):
            speaker = programme.add_speaker(db, row, programme.SpeakerInput(name=name))
            speakers.invite_speaker(db, row, item, speaker.id, valid_days=1)
            on_session.append(speaker.id)
        elsewhere = programme.add_speaker(db, row, programme.SpeakerInput(name="Cy")).id
        return Actor(producer.id, False), session.id, on_session, elsewhere


def _summit(db: object) -> Summit:
    return programme.get_summit(db, "test-summit")  # type: ignore[arg-type]


def test_open_feed_gives_each_speaker_own_key_and_slot_once(database: Database) -> None:
    producer, session_id, (ana, bo), _ = _setup(database)
    with database.session() as db:
        first = service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        again = service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        other = service.open_feed(db, producer, _summit(db), session_id, bo, max_feeds=MAX_FEEDS)
        studio = broadcast.ingest_key_of(db, producer, _summit(db), session_id)

    assert again == first
    assert (first.slot, other.slot) == (0, 1)
    assert len({first.ingest_key, other.ingest_key, studio}) == 3
    assert first.ingest_key not in repr(first)


def test_green_room_lists_session_speakers_with_their_feeds(database: Database) -> None:
    producer, session_id, (_ana, bo), _ = _setup(database)
    with database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, bo, max_feeds=MAX_FEEDS)
        room = service.green_room(db, producer, _summit(db), session_id)

    assert [(v.speaker_name, v.feed is not None) for v in room] == [("Ana", False), ("Bo", True)]


def test_open_feed_for_speaker_without_item_in_session_not_found(database: Database) -> None:
    producer, session_id, _, elsewhere = _setup(database)
    with pytest.raises(NotFoundError), database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, elsewhere, max_feeds=MAX_FEEDS)


def test_speaker_may_not_open_or_take_feeds(database: Database) -> None:
    _producer, session_id, (ana, _bo), _ = _setup(database)
    user = make_user(database, "speaker@example.org")
    with database.session() as db:
        grant(database, user, _summit(db), Role.SPEAKER)
    with pytest.raises(PermissionDeniedError), database.session() as db:
        service.open_feed(
            db, Actor(user.id, False), _summit(db), session_id, ana, max_feeds=MAX_FEEDS
        )


def test_take_before_open_or_before_start_is_refused(database: Database) -> None:
    producer, session_id, (ana, _bo), _ = _setup(database)
    with pytest.raises(ConflictError, match="Open this speaker"), database.session() as db:
        service.take_feed(db, producer, _summit(db), session_id, ana)
    with database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
    with pytest.raises(ConflictError, match="not on air"), database.session() as db:
        service.take_feed(db, producer, _summit(db), session_id, ana)
    with database.session() as db:
        assert [f.taken for f in service.open_feeds(db)] == [False]


def test_take_cuts_to_live_and_marks_only_that_feed(database: Database) -> None:
    producer, session_id, (ana, bo), _ = _setup(database)
    with database.session() as db:
        for speaker_id in (ana, bo):
            service.open_feed(
                db, producer, _summit(db), session_id, speaker_id, max_feeds=MAX_FEEDS
            )
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        plan = service.take_feed(db, producer, _summit(db), session_id, ana)
        plan = service.take_feed(db, producer, _summit(db), session_id, bo)
        taken = {f.speaker_id: f.taken for f in service.open_feeds(db)}

    assert plan.state.live is True
    assert taken == {ana: False, bo: True}


def test_release_and_close_of_taken_feed_return_to_programme(database: Database) -> None:
    producer, session_id, (ana, bo), _ = _setup(database)
    with database.session() as db:
        for speaker_id in (ana, bo):
            service.open_feed(
                db, producer, _summit(db), session_id, speaker_id, max_feeds=MAX_FEEDS
            )
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        service.take_feed(db, producer, _summit(db), session_id, ana)
        service.release_feed(db, producer, _summit(db), session_id, ana)
        released = broadcast.plan_of(db, _summit(db), session_id).state.live
        service.take_feed(db, producer, _summit(db), session_id, bo)
        service.close_feed(db, producer, _summit(db), session_id, bo)
        closed = broadcast.plan_of(db, _summit(db), session_id).state.live
        left = [(f.speaker_id, f.taken) for f in service.open_feeds(db)]
        service.close_feed(db, producer, _summit(db), session_id, bo)  # twice: no error

    assert (released, closed) == (False, False)
    assert left == [(ana, False)]


def test_feed_of_invitation_shows_the_speaker_only_their_feed(database: Database) -> None:
    producer, session_id, (ana, bo), _ = _setup(database)
    with database.session() as db:
        summit = _summit(db)
        item = db.query(Item).filter(Item.session_id == session_id).one()
        invitation = speakers.invite_speaker(db, summit, item, bo, valid_days=1)
        assert service.feed_of_invitation(db, invitation) is None
        opened = service.open_feed(db, producer, summit, session_id, bo, max_feeds=MAX_FEEDS)
        service.open_feed(db, producer, summit, session_id, ana, max_feeds=MAX_FEEDS)
        assert service.feed_of_invitation(db, invitation) == opened


def test_feed_taken_in_an_earlier_run_is_not_on_air_after_the_session_restarts(
    database: Database,
) -> None:
    producer, session_id, (ana, _bo), _ = _setup(database)
    with database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        service.take_feed(db, producer, _summit(db), session_id, ana)
        during = [f.taken for f in service.open_feeds(db)]
        broadcast.end_session(db, producer, _summit(db), session_id)
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        # The producer cuts to the studio: the speaker's old take must not come back with it.
        broadcast.cut_to_live(db, producer, _summit(db), session_id)
        after_restart = [f.taken for f in service.open_feeds(db)]
        room = service.green_room(db, producer, _summit(db), session_id)

    assert during == [True]
    assert after_restart == [False]
    assert [v.feed.taken for v in room if v.feed is not None] == [False]


def test_take_ends_when_the_producer_holds_and_goes_live_again(database: Database) -> None:
    producer, session_id, (ana, _bo), _ = _setup(database)
    with database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        service.take_feed(db, producer, _summit(db), session_id, ana)
        broadcast.hold(db, producer, _summit(db), session_id)
        broadcast.cut_to_live(db, producer, _summit(db), session_id)
        taken = [f.taken for f in service.open_feeds(db)]
        service.release_feed(db, producer, _summit(db), session_id, ana)  # not on air: no-op
        still_live = broadcast.plan_of(db, _summit(db), session_id).state.live

    assert taken == [False]
    assert still_live is True


def test_open_feed_past_the_cap_is_refused_with_what_to_do(database: Database) -> None:
    producer, session_id, (ana, bo), _ = _setup(database)
    with database.session() as db:
        first = service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=1)
    with (
        pytest.raises(ConflictError, match="All 1 green-room feeds") as refused,
        database.session() as db,
    ):
        service.open_feed(db, producer, _summit(db), session_id, bo, max_feeds=1)

    assert first.slot == 0
    assert refused.value.status_code == 409


def test_opening_taking_releasing_and_closing_a_feed_are_in_the_audit_trail(
    database: Database,
) -> None:
    producer, session_id, (ana, _), _ = _setup(database)
    with database.session() as db:
        service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        service.open_feed(db, producer, _summit(db), session_id, ana, max_feeds=MAX_FEEDS)
        broadcast.start_session(db, producer, _summit(db), session_id, countdown=False)
        service.take_feed(db, producer, _summit(db), session_id, ana)
        service.release_feed(db, producer, _summit(db), session_id, ana)
        service.close_feed(db, producer, _summit(db), session_id, ana)
        page = audit_trail.page_of_events(db, _summit(db))

    assert [(e.kind, e.subject_name, e.author) for e in reversed(page.entries)] == [
        ("greenroom.feed_opened", "Ana", "producer"),  # once: the same key again
        ("greenroom.feed_taken", "Ana", "producer"),
        ("greenroom.feed_released", "Ana", "producer"),
        ("greenroom.feed_closed", "Ana", "producer"),
    ]
