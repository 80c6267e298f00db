"""The demo summit: marked as a demo, its session looping and always back on programme."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from summitcast.config import Settings
from summitcast.domain.broadcast import BroadcastStatus
from summitcast.services import accounts, broadcast
from summitcast.services.demo import (
    DEMO_ORGANISER,
    DemoSummit,
    prepare_demo_broadcast,
    seed_demo,
    seed_demo_attendance,
)
from summitcast.storage.database import Database
from summitcast.storage.tables import Broadcast, Location, Summit, User

pytestmark = pytest.mark.integration

START = date(2027, 1, 15)


def _touch(path: Path, _text: str | None, _hz: int | None) -> Path:
    """A clip maker that only makes the file (no ffmpeg: playout is not under test here)."""
    path.touch()
    return path


def _prepare(database: Database, media: Path) -> tuple[int, broadcast.BroadcastPlan]:
    with database.session() as db:
        made = seed_demo(db, start=START)
        session_id = prepare_demo_broadcast(db, made, media, _touch)
        return session_id, broadcast.plan_of(db, made.summit, session_id)


def _press(database: Database, session_id: int, press: str) -> None:
    with database.session() as db:
        summit = db.scalar(select(Summit).where(Summit.is_demo))
        organiser = db.scalar(select(User).where(User.email == DEMO_ORGANISER))
        assert summit is not None
        assert organiser is not None
        actor = accounts.Actor(user_id=organiser.id, is_admin=False)
        getattr(broadcast, press)(db, actor, summit, session_id)


def test_seed_demo_marks_the_summit_as_a_demo(database: Database) -> None:
    with database.session() as db:
        made = seed_demo(db, start=START)
        made.summit.is_demo = False  # a data folder from before the flag
    with database.session() as db:
        again = seed_demo(db, start=START)

    assert again.summit.is_demo is True


def test_prepare_demo_broadcast_puts_a_looping_session_on_programme(
    database: Database, tmp_path: Path
) -> None:
    _, plan = _prepare(database, tmp_path)

    assert (plan.state.status, plan.state.position, plan.state.loop) == (
        BroadcastStatus.ON_AIR,
        0,
        True,
    )
    assert plan.cue is not None
    assert plan.cue.item_id is not None


@pytest.mark.parametrize("press", ["end_session", "hold", "cut_to_live"])
def test_demo_restarted_after_end_hold_or_live_is_back_on_programme(
    database: Database, tmp_path: Path, press: str
) -> None:
    session_id, _ = _prepare(database, tmp_path)
    _press(database, session_id, press)

    _, plan = _prepare(database, tmp_path)

    assert (plan.state.status, plan.state.live, plan.state.position) == (
        BroadcastStatus.ON_AIR,
        False,
        0,
    )


def test_demo_left_on_the_closing_slate_by_an_older_version_comes_back_looping(
    database: Database, tmp_path: Path
) -> None:
    session_id, first = _prepare(database, tmp_path)
    with database.session() as db:
        row = db.get(Broadcast, session_id)
        assert row is not None
        row.loop, row.position = False, 99  # past the last item: the closing slate

    _, plan = _prepare(database, tmp_path)

    assert (plan.state.status, plan.state.position, plan.state.loop) == (
        BroadcastStatus.ON_AIR,
        0,
        True,
    )
    assert plan.state.generation > first.state.generation


def test_demo_restarted_while_on_programme_keeps_its_item(
    database: Database, tmp_path: Path
) -> None:
    session_id, _ = _prepare(database, tmp_path)
    _press(database, session_id, "take_next")
    _press(database, session_id, "take_next")
    with database.session() as db:
        before = broadcast.state_of(db.get(Broadcast, session_id))  # type: ignore[arg-type]

    _, plan = _prepare(database, tmp_path)

    assert plan.state == before
    assert before.position == 2


def test_seeded_attendance_locations_are_flagged_simulated(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(
        environment="test",
        secret_key="test-secret-" + "x" * 32,
        data_dir=tmp_path,
        database_url=database.url,
    )
    with database.session() as db:
        made = seed_demo(db, start=START)
        seeded = seed_demo_attendance(
            db, DemoSummit(made.summit, "", "", ""), settings, locations=40
        )
        flags = set(db.scalars(select(Location.simulated)))

    assert (seeded, flags) == (True, {True})
