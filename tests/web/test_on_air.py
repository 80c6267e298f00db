"""What a location screen shows of the broadcast (web/on_air.py): the view and its pushes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.services import accounts, programme
from summitcast.services import broadcast as service
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from summitcast.web.on_air import OnAirScreens, screen_view
from tests.conftest import make_summit

START = datetime(2027, 7, 17, 8, 0, tzinfo=UTC)


def _seed(database: Database) -> tuple[int, int, Actor]:
    """The test summit with one session of three ready items; (summit id, session id, admin)."""
    summit = make_summit(database)
    with database.session() as db:
        row = db.get(Summit, summit.id)
        assert row is not None
        session = programme.add_session(
            db,
            row,
            programme.SessionInput(
                title="Opening", planned_start=START, planned_end=START.replace(hour=10)
            ),
        )
        for title in ("Welcome", "Keynote", "Panel"):
            programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=title,
                    kind=ItemKind.SPEECH,
                    planned_duration_s=600,
                    status=ItemStatus.READY,
                ),
            )
        admin = accounts.create_user(db, email="admin@example.org", password="x" * 16)
        return summit.id, session.id, Actor(admin.id, True)


def _view(database: Database, summit_id: int, **kwargs: Any) -> dict[str, Any]:
    with database.session() as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        return screen_view(db, summit, **kwargs)


def test_screen_view_before_the_start_names_the_session_and_its_planned_start(
    database: Database,
) -> None:
    summit_id, session_id, _ = _seed(database)

    view = _view(database, summit_id)

    assert view == {
        "type": "on_air",
        "active": False,
        "ready": False,
        "session_id": session_id,
        "session": "Opening",
        "master": None,
        "status": "idle",
        "live": False,
        "on_air": None,
        "next": None,
        "starts_at": "2027-07-17T08:00:00+00:00",
    }


def test_screen_view_follows_the_broadcast_not_the_planned_times(database: Database) -> None:
    summit_id, session_id, admin = _seed(database)
    with database.session() as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        service.start_session(db, admin, summit, session_id, countdown=False)
        service.take_next(db, admin, summit, session_id)

    view = _view(database, summit_id)
    not_yet = _view(database, summit_id, health=lambda _id: None)
    written = _view(database, summit_id, health=lambda _id: {"segment_age_s": 0.4})
    # The top rung has a segment, a lower rung's live playlist not yet (a screen would 404).
    partly = _view(
        database, summit_id, health=lambda _id: {"segment_age_s": 0.4, "playable": False}
    )
    whole = _view(database, summit_id, health=lambda _id: {"segment_age_s": 0.4, "playable": True})

    assert (view["active"], view["on_air"], view["next"]) == (True, "Keynote", "Panel")
    assert view["master"] == f"/hls/test-summit/{session_id}/master.m3u8"
    assert (view["ready"], not_yet["ready"], written["ready"]) == (True, False, True)
    assert (partly["ready"], whole["ready"]) == (False, True)
    with database.session() as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        service.end_session(db, admin, summit, session_id)
    ended = _view(database, summit_id)
    assert (ended["active"], ended["status"], ended["master"]) == (False, "ended", None)


class FakeScreen:
    """A screen that keeps what it was pushed."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    def push(self, text: str) -> None:
        """Keep one message."""
        self.got.append(json.loads(text))


def test_on_air_screens_push_changes_only_and_the_last_view_to_a_newcomer(
    database: Database,
) -> None:
    views = {"1": {"on_air": "Welcome"}, "2": {"on_air": "Elsewhere"}}
    reads: list[str] = []

    def read(_db: Database, key: str, _health: object) -> dict[str, Any]:
        reads.append(key)
        return dict(views[key])

    screens = OnAirScreens(database, read=read)
    first, second, other = FakeScreen(), FakeScreen(), FakeScreen()

    async def scenario() -> list[int]:
        screens.join("1", first)
        screens.join("2", other)
        changed = [await screens.check()]  # both summits: first views
        changed.append(await screens.check())  # nothing changed: nothing pushed
        views["1"] = {"on_air": "Keynote"}
        changed.append(await screens.check())
        screens.join("1", second)  # gets the last view at once
        screens.leave("2", other)
        changed.append(await screens.check())
        return changed

    changed = asyncio.run(scenario())

    assert changed == [2, 0, 1, 0]
    assert first.got == [{"on_air": "Welcome"}, {"on_air": "Keynote"}]
    assert second.got == [{"on_air": "Keynote"}]
    assert other.got == [{"on_air": "Elsewhere"}]
    # A summit whose last screen left is read no more.
    assert reads == ["1", "2", "1", "2", "1", "2", "1"]
