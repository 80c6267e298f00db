"""Use cases of the broadcast: start a session, take the next item, hold, cut to live, end.

Each change is stored in the ``broadcasts`` row of the session; the playout
worker (``summitcast.runtime.broadcast_manager``) polls these rows and plays what they say,
so a button pressed on any app node reaches the node that runs the encoder.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload

from summitcast.domain import broadcast as rules
from summitcast.domain.accounts import Permission
from summitcast.domain.playout import PlayoutItem
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import NotFoundError, ValidationError
from summitcast.services import accounts
from summitcast.services.programme import get_session
from summitcast.storage.tables import (
    Broadcast,
    Item,
    ItemMedia,
    ItemSpeaker,
    Session,
    Summit,
    utcnow,
)

INGEST_KEY_BYTES = 24  # 32 url-safe characters: within SRT's 10–79 passphrase limits


class MediaKind(StrEnum):
    """What one file of an item carries."""

    PROGRAMME = "programme"
    AUDIO = "audio"
    SUBTITLES = "subtitles"


@dataclass(frozen=True, slots=True)
class BroadcastPlan:
    """Everything a playout worker needs about one session, read in one transaction."""

    summit_slug: str
    session_id: int
    session_title: str
    languages: tuple[str, ...]
    subtitle_languages: tuple[str, ...]
    state: rules.BroadcastState
    cue: rules.Cue | None
    # repr=False: plans appear in log lines and tracebacks; the key must not.
    ingest_key: str = field(repr=False)
    # The control room's buttons that apply now (rules.allowed_actions).
    allowed: frozenset[rules.Action] = frozenset()
    # When the state last changed (a button, or an item ending by itself): roughly
    # when what is on air went on air, until the encoder node says more precisely.
    changed_at: datetime | None = None


def new_ingest_key() -> str:
    """A fresh random ingest key (RTMP stream key and SRT passphrase)."""
    return secrets.token_urlsafe(INGEST_KEY_BYTES)


def _row(db: DbSession, session: Session) -> Broadcast:
    """The session's broadcast row, created idle with a new ingest key on first use."""
    row = db.get(Broadcast, session.id)
    if row is not None:
        return row
    row = Broadcast(
        session_id=session.id,
        summit_id=session.summit_id,
        status=rules.BroadcastStatus.IDLE.value,
        position=0,
        live=False,
        generation=0,
        ingest_key=new_ingest_key(),
        ingest_key_rotated_at=utcnow(),
    )
    try:
        # A savepoint: two requests (or app nodes) may create the row at once; the
        # loser's insert fails alone and it reads the winner's row instead.
        with db.begin_nested():
            db.add(row)
    except IntegrityError:
        winner = db.get(Broadcast, session.id, populate_existing=True)
        if winner is None:
            raise
        return winner
    return row


def state_of(row: Broadcast) -> rules.BroadcastState:
    """The domain state stored in a row."""
    return rules.BroadcastState(
        status=rules.BroadcastStatus(row.status),
        position=row.position,
        live=row.live,
        generation=row.generation,
        started_at=row.started_at,
        countdown_to=row.countdown_to,
        loop=row.loop,
    )


def _save(row: Broadcast, state: rules.BroadcastState) -> rules.BroadcastState:
    """Write a state back into its row."""
    if state.status is rules.BroadcastStatus.ENDED and row.status != state.status.value:
        row.ended_at = utcnow()
    row.status = state.status.value
    row.position = state.position
    row.live = state.live
    row.generation = state.generation
    row.started_at = state.started_at
    row.countdown_to = state.countdown_to
    row.loop = state.loop
    return state


def _media_of(db: DbSession, item_ids: Sequence[int]) -> dict[int, list[ItemMedia]]:
    """Every media row of these items, by item."""
    found: dict[int, list[ItemMedia]] = {i: [] for i in item_ids}
    if item_ids:
        for media in db.scalars(select(ItemMedia).where(ItemMedia.item_id.in_(item_ids))):
            found[media.item_id].append(media)
    return found


def playout_items(db: DbSession, session: Session) -> list[PlayoutItem]:
    """The session's run of show with its media, as the playout rules need it."""
    items = list(
        db.scalars(
            select(Item)
            .where(Item.session_id == session.id)
            .order_by(Item.position)
            .options(selectinload(Item.speaker_links).selectinload(ItemSpeaker.speaker))
        )
    )
    media = _media_of(db, [item.id for item in items])
    result = []
    for item in items:
        files = media[item.id]
        programme = next((m for m in files if m.kind == MediaKind.PROGRAMME), None)
        speaker = item.speaker_links[0].speaker if item.speaker_links else None
        result.append(
            PlayoutItem(
                item_id=item.id,
                kind=ItemKind(item.kind),
                title=item.title,
                duration_s=float(max(1, item.planned_duration_s)),
                status=ItemStatus(item.status),
                media_path=programme.path if programme else None,
                media_ok=programme is None or not programme.info.get("problem"),
                speaker_name=speaker.name if speaker else None,
                speaker_role=speaker.role_line if speaker else None,
                speaker_country=speaker.country if speaker else None,
                audio_paths=tuple((m.language, m.path) for m in files if m.kind == MediaKind.AUDIO),
                subtitle_paths=tuple(
                    (m.language, m.path) for m in files if m.kind == MediaKind.SUBTITLES
                ),
            )
        )
    return result


def attach_media(
    db: DbSession,
    item: Item,
    kind: MediaKind,
    path: str,
    *,
    language: str = "",
    info: dict[str, Any] | None = None,
) -> ItemMedia:
    """Record one media file of an item (replacing the same kind and language)."""
    if kind is MediaKind.PROGRAMME and language:
        raise ValidationError("The programme file has no language.", field="language")
    if kind is not MediaKind.PROGRAMME and not language:
        raise ValidationError("Audio and subtitle files need a language.", field="language")
    row = db.scalar(
        select(ItemMedia).where(
            ItemMedia.item_id == item.id,
            ItemMedia.kind == kind.value,
            ItemMedia.language == language,
        )
    )
    if row is None:
        row = ItemMedia(item_id=item.id, kind=kind.value, language=language, path=path)
        db.add(row)
    row.path = path
    row.info = dict(info or {})
    db.flush()
    return row


def _plan(
    db: DbSession, summit: Summit, session: Session, row: Broadcast, now: datetime
) -> BroadcastPlan:
    """Assemble the plan of one session from its rows."""
    items = playout_items(db, session)
    state = state_of(row)
    subtitle_languages = sorted({lang for item in items for lang, _ in item.subtitle_paths if lang})
    return BroadcastPlan(
        summit_slug=summit.slug,
        session_id=session.id,
        session_title=session.title,
        languages=tuple(summit.languages or ["en"]),
        subtitle_languages=tuple(subtitle_languages),
        state=state,
        cue=rules.cue_for(state, items, session_title=session.title, now=now),
        ingest_key=row.ingest_key,
        allowed=rules.allowed_actions(state, len(rules.playable(items))),
        changed_at=row.updated_at,
    )


def plan_of(
    db: DbSession, summit: Summit, session_id: int, *, now: datetime | None = None
) -> BroadcastPlan:
    """The current plan of one session of this summit."""
    session = get_session(db, summit, session_id)
    return _plan(db, summit, session, _row(db, session), now or utcnow())


def _change(
    db: DbSession,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    change: Any,
) -> BroadcastPlan:
    """Check the actor may run the broadcast, apply change(state, item_count), return the plan."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _row(db, session)
    count = len(rules.playable(playout_items(db, session)))
    _save(row, change(state_of(row), count))
    db.flush()
    return _plan(db, summit, session, row, utcnow())


def start_session(
    db: DbSession,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    *,
    countdown: bool = True,
    now: datetime | None = None,
) -> BroadcastPlan:
    """Put a session on air: a countdown to its planned start if that is ahead, else item 1."""
    moment = now or utcnow()
    planned = get_session(db, summit, session_id).planned_start if countdown else None
    return _change(
        db,
        actor,
        summit,
        session_id,
        lambda state, _n: rules.start(state, now=moment, planned_start=planned),
    )


def take_next(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> BroadcastPlan:
    """Put the next item of the run of show on air."""
    return _change(db, actor, summit, session_id, rules.take_next)


def hold(db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int) -> BroadcastPlan:
    """Hold on the "we will be right back" slate."""
    return _change(db, actor, summit, session_id, lambda state, _n: rules.hold(state))


def cut_to_live(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> BroadcastPlan:
    """Put the studio's live input on air."""
    return _change(db, actor, summit, session_id, lambda state, _n: rules.cut_to_live(state))


def back_to_programme(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> BroadcastPlan:
    """Leave hold or live: the cued item plays from its start."""
    return _change(db, actor, summit, session_id, lambda state, _n: rules.back_to_programme(state))


def end_session(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> BroadcastPlan:
    """End the session's broadcast."""
    return _change(db, actor, summit, session_id, lambda state, _n: rules.end(state))


def set_loop(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, *, loop: bool
) -> BroadcastPlan:
    """Make the session go back to its first item after the last (or end on the closing slate)."""
    return _change(db, actor, summit, session_id, lambda state, _n: rules.set_loop(state, loop))


def rotate_ingest_key(db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int) -> str:
    """Give the session a new ingest key; the old one stops working when the ingest restarts."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    row = _row(db, get_session(db, summit, session_id))
    row.ingest_key = new_ingest_key()
    row.ingest_key_rotated_at = utcnow()
    db.flush()
    return row.ingest_key


def ingest_key_of(db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int) -> str:
    """The session's ingest key, for the producer's control room only."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    return _row(db, get_session(db, summit, session_id)).ingest_key


def item_finished(db: DbSession, session_id: int, generation: int) -> BroadcastPlan | None:
    """The worker's report that the cue of generation ended by itself; returns the new plan."""
    row = db.get(Broadcast, session_id)
    if row is None:
        return None
    session = db.get(Session, session_id)
    if session is None:
        return None
    summit = session.summit
    count = len(rules.playable(playout_items(db, session)))
    _save(row, rules.item_finished(state_of(row), generation, count))
    db.flush()
    return _plan(db, summit, session, row, utcnow())


def active_plans(db: DbSession, *, now: datetime | None = None) -> list[BroadcastPlan]:
    """The plans of every session that should be playing now."""
    statuses = [s.value for s in rules.ACTIVE_STATUSES]
    rows = list(db.scalars(select(Broadcast).where(Broadcast.status.in_(statuses))))
    plans = []
    for row in rows:
        session = db.get(Session, row.session_id)
        if session is not None:
            plans.append(_plan(db, session.summit, session, row, now or utcnow()))
    return plans


def public_plan(db: DbSession, summit: Summit, session_id: int) -> BroadcastPlan:
    """The plan of a session for public pages (the key stays inside; callers never show it)."""
    session = get_session(db, summit, session_id)
    row = db.get(Broadcast, session.id)
    if row is None:
        state = rules.BroadcastState()
        return BroadcastPlan(
            summit.slug,
            session.id,
            session.title,
            tuple(summit.languages),
            (),
            state,
            None,
            "",
            allowed=rules.allowed_actions(state, 0),  # idle: the run's length is moot
        )
    return _plan(db, summit, session, row, utcnow())


def current_session(db: DbSession, summit: Summit) -> Session:
    """The session to watch: the one on air, else the next one planned, else the last."""
    sessions = list(
        db.scalars(
            select(Session).where(Session.summit_id == summit.id).order_by(Session.planned_start)
        )
    )
    if not sessions:
        raise NotFoundError("This summit has no sessions yet.")
    statuses = {
        row.session_id: row.status
        for row in db.scalars(select(Broadcast).where(Broadcast.summit_id == summit.id))
    }
    active = {s.value for s in rules.ACTIVE_STATUSES}
    for session in sessions:
        if statuses.get(session.id) in active:
            return session
    now = utcnow()
    upcoming = [s for s in sessions if s.planned_end > now]
    return upcoming[0] if upcoming else sessions[-1]


def run_of_show(db: DbSession, session: Session) -> list[PlayoutItem]:
    """The items the broadcast steps through, in order (for "on air" and "next")."""
    return rules.playable(playout_items(db, session))
