"""The broadcast as pages see it: the watch page, the control room and its buttons.

The web edge reaches the broadcast manager (``summitcast.runtime.broadcast_manager``)
only through the ``BroadcastControl`` port below, which the manager satisfies
structurally; app.py hands the one it made to the routes (web/deps.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pycountry
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.broadcast import Action, BroadcastStatus
from summitcast.domain.playout import PlayoutItem
from summitcast.media.recording import list_recordings
from summitcast.services import broadcast
from summitcast.services.accounts import Actor
from summitcast.services.programme import get_session, get_summit
from summitcast.storage.tables import Session, Summit, utcnow


class NamedNode(Protocol):
    """Where stream health is shared, as far as the control room cares."""

    @property
    def node(self) -> str:
        """This process, as health views name their sender."""


class BroadcastControl(Protocol):
    """What pages ask of the broadcast manager (BroadcastManager satisfies it)."""

    @property
    def board(self) -> NamedNode:
        """The health board this process reads and publishes stream health on."""

    @property
    def last_error(self) -> str | None:
        """Why the manager's last look at the database failed, or None."""

    def health(self, session_id: int) -> dict[str, Any] | None:
        """The stream health of a session, from whichever node runs it, or None."""

    def ingest_urls(self, session_id: int, key: str) -> dict[str, str]:
        """The URLs a studio sends to (key included: for the producer's eyes only)."""

    def kick(self) -> None:
        """Look at the database now (a producer just pressed a button)."""


def session_folder(settings: Settings, summit_slug: str, session_id: int) -> Path:
    """Where one session's HLS output and recordings live on this machine."""
    return settings.effective_segment_dir / summit_slug / str(session_id)


def language_name(code: str) -> str:
    """A readable name for a language code (its English name; the code if unknown)."""
    found = pycountry.languages.get(alpha_2=code) if len(code) == 2 else None
    found = found or pycountry.languages.get(alpha_3=code)
    return str(getattr(found, "name", code))


@dataclass(frozen=True, slots=True)
class RecordedFile:
    """One downloadable MP4 of an ended session."""

    language: str  # the language's readable name
    code: str
    path: str  # relative to the session's HLS folder (and its URL under /hls/…)
    size_bytes: int


def recordings_of(settings: Settings, summit_slug: str, session_id: int) -> list[RecordedFile]:
    """The newest recordings of a session, one per language."""
    return [
        RecordedFile(language_name(rec.language), rec.language, rec.path, rec.size_bytes)
        for rec in list_recordings(session_folder(settings, summit_slug, session_id))
    ]


@dataclass(frozen=True, slots=True)
class OnAir:
    """A session's broadcast as the public sees it: its plan and run of show."""

    summit: Summit
    session: Session
    plan: broadcast.BroadcastPlan
    run: list[PlayoutItem]
    recordings: list[RecordedFile]  # only once it ended, and only where asked for


def on_air(
    db: DbSession,
    summit: Summit,
    session_id: int | None = None,
    *,
    settings: Settings | None = None,
) -> OnAir:
    """One session's public broadcast (None: the one to watch now; settings: its recordings)."""
    session = (
        get_session(db, summit, session_id)
        if session_id is not None
        else broadcast.current_session(db, summit)
    )
    plan = broadcast.public_plan(db, summit, session.id)
    recordings = []
    if settings is not None and plan.state.status is BroadcastStatus.ENDED:
        recordings = recordings_of(settings, summit.slug, session.id)
    return OnAir(summit, session, plan, broadcast.run_of_show(db, session), recordings)


def on_air_in(
    db: DbSession, slug: str, session_id: int | None = None, *, settings: Settings | None = None
) -> OnAir:
    """on_air of the summit with this address name."""
    return on_air(db, get_summit(db, slug), session_id, settings=settings)


@dataclass(frozen=True, slots=True)
class ControlState:
    """What the control room shows of one session, read now."""

    session: Session
    plan: broadcast.BroadcastPlan
    run: list[PlayoutItem]
    health: dict[str, Any] | None
    node: str  # this process, as health views name their sender
    manager_error: str | None
    now: datetime


def control_state(
    db: DbSession, control: BroadcastControl, summit: Summit, session_id: int
) -> ControlState:
    """The control room's view of one session of this summit (stream health included)."""
    session = get_session(db, summit, session_id)
    plan = broadcast.plan_of(db, summit, session.id)
    return ControlState(
        session=session,
        plan=plan,
        run=broadcast.run_of_show(db, session),
        health=control.health(session.id),
        node=control.board.node,
        manager_error=control.last_error,
        now=utcnow(),
    )


@dataclass(frozen=True, slots=True)
class ControlRoom:
    """The control room page: its state, the ingest key and where a studio sends to."""

    state: ControlState
    ingest_key: str
    ingest: dict[str, str]


def control_room(
    db: DbSession, control: BroadcastControl, actor: Actor, summit: Summit, session_id: int
) -> ControlRoom:
    """Everything the producer's control room page shows."""
    session = get_session(db, summit, session_id)
    key = broadcast.ingest_key_of(db, actor, summit, session.id)
    state = control_state(db, control, summit, session.id)
    return ControlRoom(state, key, control.ingest_urls(session.id, key))


Change = Callable[[DbSession, Actor, Summit, int], object]
ROTATE_KEY = "rotate-key"
# Each button of the control room, by the last part of its form's URL (Action's values).
CHANGES: Mapping[str, Change] = {
    Action.START: broadcast.start_session,
    Action.START_NOW: lambda db, actor, summit, session_id: broadcast.start_session(
        db, actor, summit, session_id, countdown=False
    ),
    Action.NEXT: broadcast.take_next,
    Action.HOLD: broadcast.hold,
    Action.LIVE: broadcast.cut_to_live,
    Action.BACK: broadcast.back_to_programme,
    Action.END: broadcast.end_session,
    ROTATE_KEY: broadcast.rotate_ingest_key,
}


def press(
    db: DbSession,
    control: BroadcastControl,
    actor: Actor,
    summit: Summit,
    session_id: int,
    button: str,
    *,
    read_back: bool = False,
) -> ControlState | None:
    """Apply one button, commit it, wake the manager; the new state if read_back."""
    CHANGES[button](db, actor, summit, session_id)
    # Committed now, not when the request ends, so the manager's next look sees it.
    db.commit()
    control.kick()
    return control_state(db, control, summit, session_id) if read_back else None
