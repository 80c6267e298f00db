"""Broadcast use cases on SQLite and PostgreSQL: buttons, permissions, ingest keys, media."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from summitcast.domain.accounts import Role
from summitcast.domain.broadcast import BroadcastStatus, ingest_key_matches
from summitcast.domain.playout import SourceKind, StepReason
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from summitcast.services import broadcast as service
from summitcast.services import programme
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from summitcast.storage.tables import Broadcast, Item, Summit
from tests.conftest import grant, make_summit, make_user

pytestmark = pytest.mark.integration

START = datetime(2027, 7, 17, 16, 0, tzinfo=UTC)


def _setup(database: Database) -> tuple[Actor, Actor, int, list[int]]:
    """A summit with a producer, a speaker and one session of three items."""
    summit = make_summit(database)
    producer = make_user(database, "producer@example.org")
    speaker = make_user(database, "speaker@example.org")
    grant(database, producer, summit, Role.PRODUCER)
    grant(database, speaker, summit, Role.SPEAKER)
    with database.session() as db:
        summit_row = programme.get_summit(db, "test-summit")
        session = programme.add_session(
            db,
            summit_row,
            programme.SessionInput(
                title="Opening", planned_start=START, planned_end=START + timedelta(hours=1)
            ),
        )
        items = [
            programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=title, planned_duration_s=60, status=ItemStatus.READY, kind=kind
                ),
            )
            for title, kind in (
                ("Welcome", ItemKind.SPEECH),
                ("Skipped", ItemKind.SPEECH),
                ("Keynote", ItemKind.SPEECH),
            )
        ]
        item_ids = [i.id for i in items]
        session_id = session.id
    with database.session() as db:
        db.get(Item, item_ids[1]).status = ItemStatus.SKIPPED.value  # type: ignore[union-attr]
    return Actor(producer.id, False), Actor(speaker.id, False), session_id, item_ids


def _summit(db: object) -> Summit:
    return programme.get_summit(db, "test-summit")  # type: ignore[arg-type]


def test_start_session_before_planned_start_counts_down(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    now = START - timedelta(minutes=2)
    with database.session() as db:
        plan = service.start_session(db, producer, _summit(db), session_id, now=now)
    assert (plan.state.status, plan.state.countdown_to) == (BroadcastStatus.COUNTDOWN, START)
    assert plan.cue is not None
    assert plan.cue.reason is StepReason.COUNTDOWN
    assert (plan.session_title, plan.languages) == ("Opening", ("en", "fr"))


def test_buttons_walk_the_state_machine_and_persist(database: Database) -> None:
    producer, _speaker, session_id, item_ids = _setup(database)
    seen = []
    with database.session() as db:
        plan = service.start_session(db, producer, _summit(db), session_id, countdown=False)
        seen.append((plan.state.status, plan.state.position, plan.cue and plan.cue.item_id))
    for press in (service.hold, service.back_to_programme, service.take_next, service.cut_to_live):
        with database.session() as db:
            plan = press(db, producer, _summit(db), session_id)
            seen.append((plan.state.status, plan.state.position, plan.cue and plan.cue.item_id))
    with database.session() as db:
        plan = service.end_session(db, producer, _summit(db), session_id)
        seen.append((plan.state.status, plan.state.position, plan.cue))
        row = db.get(Broadcast, session_id)
        assert row is not None
        assert row.ended_at is not None
        assert row.generation == 6
    assert seen == [
        (BroadcastStatus.ON_AIR, 0, item_ids[0]),
        (BroadcastStatus.HOLD, 0, None),
        (BroadcastStatus.ON_AIR, 0, item_ids[0]),
        (BroadcastStatus.ON_AIR, 1, item_ids[2]),  # the skipped item is left out
        (BroadcastStatus.ON_AIR, 1, None),  # live
        (BroadcastStatus.ENDED, 1, None),
    ]


def test_start_twice_refused(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    with database.session() as db:
        service.start_session(db, producer, _summit(db), session_id, countdown=False)
    with pytest.raises(ConflictError), database.session() as db:
        service.start_session(db, producer, _summit(db), session_id, countdown=False)


def test_hold_before_start_refused(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    with pytest.raises(ConflictError, match="start it first"), database.session() as db:
        service.hold(db, producer, _summit(db), session_id)


@pytest.mark.parametrize(
    "press",
    [
        lambda db, actor, summit, sid: service.start_session(db, actor, summit, sid),
        service.take_next,
        service.hold,
        service.cut_to_live,
        service.back_to_programme,
        service.end_session,
        service.rotate_ingest_key,
        service.ingest_key_of,
    ],
)
def test_speaker_may_not_run_the_broadcast(database: Database, press: object) -> None:
    _producer, speaker, session_id, _ = _setup(database)
    with pytest.raises(PermissionDeniedError), database.session() as db:
        press(db, speaker, _summit(db), session_id)  # type: ignore[operator]
    with pytest.raises(AuthenticationError), database.session() as db:
        press(db, None, _summit(db), session_id)  # type: ignore[operator]


def test_producer_of_another_summit_refused(database: Database) -> None:
    _producer, _speaker, session_id, _ = _setup(database)
    other = make_summit(database, slug="other-summit")
    outsider = make_user(database, "outsider@example.org")
    grant(database, outsider, other, Role.PRODUCER)
    with pytest.raises(PermissionDeniedError), database.session() as db:
        service.start_session(db, Actor(outsider.id, False), _summit(db), session_id)


def test_session_of_another_summit_not_found(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    make_summit(database, slug="other-summit")
    with database.session() as db:
        other = programme.get_summit(db, "other-summit")
        admin = Actor(producer.user_id, True)
        with pytest.raises(NotFoundError):
            service.start_session(db, admin, other, session_id)


def test_ingest_key_created_once_rotated_and_kept_out_of_repr(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    with database.session() as db:
        first = service.ingest_key_of(db, producer, _summit(db), session_id)
    with database.session() as db:
        again = service.ingest_key_of(db, producer, _summit(db), session_id)
        plan = service.plan_of(db, _summit(db), session_id)
    with database.session() as db:
        rotated = service.rotate_ingest_key(db, producer, _summit(db), session_id)
    with database.session() as db:
        stored = service.ingest_key_of(db, producer, _summit(db), session_id)
    assert first == again == plan.ingest_key
    assert rotated == stored != first
    assert len(first) == 32
    assert len(rotated) == 32
    assert first not in repr(plan)


def test_ingest_key_matches_only_the_exact_key() -> None:
    key = service.new_ingest_key()
    assert ingest_key_matches(key, key)
    assert not ingest_key_matches(key, key[:-1])
    assert not ingest_key_matches(key, key + "x")
    assert not ingest_key_matches(key, "")
    assert service.new_ingest_key() != key


def test_attach_media_feeds_the_cue_and_replaces_same_language(database: Database) -> None:
    producer, _speaker, session_id, item_ids = _setup(database)
    with database.session() as db:
        item = db.get(Item, item_ids[0])
        assert item is not None
        service.attach_media(db, item, service.MediaKind.PROGRAMME, "/m/welcome.mp4")
        service.attach_media(db, item, service.MediaKind.AUDIO, "/m/old.fr.m4a", language="fr")
        service.attach_media(db, item, service.MediaKind.AUDIO, "/m/welcome.fr.m4a", language="fr")
        service.attach_media(db, item, service.MediaKind.SUBTITLES, "/m/w.en.vtt", language="en")
    with database.session() as db:
        plan = service.start_session(db, producer, _summit(db), session_id, countdown=False)
    assert plan.cue is not None
    assert (plan.cue.source, plan.cue.path) == (SourceKind.FILE, "/m/welcome.mp4")
    assert plan.cue.audio_paths == (("fr", "/m/welcome.fr.m4a"),)
    assert plan.cue.subtitle_paths == (("en", "/m/w.en.vtt"),)
    assert plan.subtitle_languages == ("en",)


@pytest.mark.parametrize(
    ("kind", "language"),
    [(service.MediaKind.PROGRAMME, "en"), (service.MediaKind.AUDIO, "")],
)
def test_attach_media_language_rules(
    database: Database, kind: service.MediaKind, language: str
) -> None:
    _producer, _speaker, _session_id, item_ids = _setup(database)
    with pytest.raises(ValidationError), database.session() as db:
        item = db.get(Item, item_ids[0])
        assert item is not None
        service.attach_media(db, item, kind, "/m/x", language=language)


def test_problem_file_cues_speaker_slate(database: Database) -> None:
    producer, _speaker, session_id, item_ids = _setup(database)
    with database.session() as db:
        item = db.get(Item, item_ids[0])
        assert item is not None
        info = {"problem": "moov atom not found"}
        service.attach_media(db, item, service.MediaKind.PROGRAMME, "/m/bad.mp4", info=info)
    with database.session() as db:
        plan = service.start_session(db, producer, _summit(db), session_id, countdown=False)
    assert plan.cue is not None
    assert (plan.cue.source, plan.cue.reason) == (SourceKind.SLATE, StepReason.FALLBACK_PROBLEM)


def test_item_finished_advances_once_and_ignores_stale_reports(database: Database) -> None:
    producer, _speaker, session_id, item_ids = _setup(database)
    with database.session() as db:
        plan = service.start_session(db, producer, _summit(db), session_id, countdown=False)
    generation = plan.state.generation
    with database.session() as db:
        after = service.item_finished(db, session_id, generation)
    with database.session() as db:
        stale = service.item_finished(db, session_id, generation)  # the same report twice
    assert after is not None
    assert stale is not None
    assert (after.state.position, after.cue and after.cue.item_id) == (1, item_ids[2])
    assert stale.state == after.state
    with database.session() as db:
        assert service.item_finished(db, 999_999, 1) is None


def test_active_plans_lists_only_sessions_on_air(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    with database.session() as db:
        assert service.active_plans(db) == []
        service.start_session(db, producer, _summit(db), session_id, countdown=False)
    with database.session() as db:
        assert [p.session_id for p in service.active_plans(db)] == [session_id]
        service.end_session(db, producer, _summit(db), session_id)
    with database.session() as db:
        assert service.active_plans(db) == []


def test_public_plan_without_row_is_idle_and_has_no_key(database: Database) -> None:
    _producer, _speaker, session_id, _ = _setup(database)
    with database.session() as db:
        plan = service.public_plan(db, _summit(db), session_id)
        assert db.get(Broadcast, session_id) is None  # looking does not create the row
    assert (plan.state.status, plan.cue, plan.ingest_key) == (BroadcastStatus.IDLE, None, "")


def test_current_session_prefers_the_one_on_air(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    with database.session() as db:
        summit = _summit(db)
        later = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Later",
                planned_start=START + timedelta(hours=2),
                planned_end=START + timedelta(hours=3),
            ),
        ).id
        assert service.current_session(db, summit).id == session_id  # the next one planned
    with database.session() as db:
        service.start_session(db, producer, _summit(db), later, countdown=False)
    with database.session() as db:
        assert service.current_session(db, _summit(db)).id == later


def test_two_requests_creating_the_row_at_once_share_one_key(database: Database) -> None:
    producer, _speaker, session_id, _ = _setup(database)
    keys: list[str] = []

    def second() -> None:
        with database.session() as db:
            keys.append(service.ingest_key_of(db, producer, _summit(db), session_id))

    with database.session() as db:
        first = service.ingest_key_of(db, producer, _summit(db), session_id)  # not committed yet
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.5)  # the second request reaches its insert and waits on the first
    other.join(timeout=30)
    assert keys == [first]
