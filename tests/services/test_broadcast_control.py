"""The broadcast as pages see it (services/broadcast_control.py): buttons, state, recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from summitcast.config import Settings
from summitcast.domain.broadcast import Action, BroadcastStatus
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.services import accounts, programme
from summitcast.services import broadcast_control as control
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from summitcast.web.routes.broadcast import CONTROL_POSTS
from tests import factories

pytestmark = pytest.mark.integration


class FakeBoard:
    """A health board that only names its node."""

    node = "this-host:1"


class FakeControl:
    """A BroadcastControl that remembers being woken and reports no stream."""

    def __init__(self) -> None:
        self.board = FakeBoard()
        self.last_error: str | None = None
        self.kicks = 0

    def health(self, session_id: int) -> dict[str, Any] | None:
        """No node runs any session."""
        return None

    def ingest_urls(self, session_id: int, key: str) -> dict[str, str]:
        """One URL, carrying the key."""
        return {"rtmp_url": f"rtmp://host/live/{key}"}

    def kick(self) -> None:
        """Count one wake-up."""
        self.kicks += 1


def _seed(database: Database) -> tuple[int, int, Actor]:
    """A summit with one session of two ready items; (summit id, session id, admin)."""
    summit = factories.summit(database)
    with database.session() as db:
        row = db.get(Summit, summit.id)
        assert row is not None
        session = factories.session(db, row)
        for title in ("Welcome", "Keynote"):
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


def test_every_button_has_a_change_and_a_route() -> None:
    buttons = {action.value for action in Action} | {control.ROTATE_KEY}

    assert set(control.CHANGES) == buttons
    assert {str(path) for path, _doc in CONTROL_POSTS} == buttons


def test_press_commits_wakes_the_manager_and_reads_the_new_state_back(
    database: Database,
) -> None:
    summit_id, session_id, admin = _seed(database)
    fake = FakeControl()

    with database.session() as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        quiet = control.press(db, fake, admin, summit, session_id, Action.START_NOW)
        state = control.press(db, fake, admin, summit, session_id, Action.NEXT, read_back=True)
        # Seen by another unit of work before this one ends: committed at the press.
        with database.session() as other:
            seen = control.on_air_in(other, "test-summit", session_id)

    assert quiet is None
    assert state is not None
    assert (state.plan.state.status, state.plan.state.position) == (BroadcastStatus.ON_AIR, 1)
    assert (state.node, state.health, state.manager_error) == ("this-host:1", None, None)
    assert [item.title for item in state.run] == ["Welcome", "Keynote"]
    assert fake.kicks == 2
    assert (seen.plan.state.status, seen.plan.state.position) == (BroadcastStatus.ON_AIR, 1)


def test_control_room_shows_the_ingest_key_and_where_to_send_it(database: Database) -> None:
    summit_id, session_id, admin = _seed(database)

    with database.session() as db:
        summit = db.get(Summit, summit_id)
        assert summit is not None
        room = control.control_room(db, FakeControl(), admin, summit, session_id)

    assert room.ingest == {"rtmp_url": f"rtmp://host/live/{room.ingest_key}"}
    assert room.state.plan.state.status is BroadcastStatus.IDLE


def test_recordings_of_an_ended_session_are_the_newest_per_language(
    settings: Settings,
) -> None:
    folder = control.session_folder(settings, "test-summit", 7) / "recording"
    folder.mkdir(parents=True)
    for name, size in (("en-100.mp4", 3), ("en-200.mp4", 2_500_000), ("de-200.mp4", 1)):
        (folder / name).write_bytes(b"x" * size)

    found = control.recordings_of(settings, "test-summit", 7)

    assert found == [
        control.RecordedFile("German", "de", "recording/de-200.mp4", 1),
        control.RecordedFile("English", "en", "recording/en-200.mp4", 2_500_000),
    ]
    assert control.session_folder(settings, "test-summit", 7) == Path(
        settings.effective_segment_dir / "test-summit" / "7"
    )
