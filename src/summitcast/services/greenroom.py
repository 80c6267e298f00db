"""Use cases of the green room: a live speaker's own ingest, seen by the producer before air.

The producer opens a feed for a speaker of the session; the speaker gets their own
RTMP stream key / SRT passphrase (never the studio's), and sends to it whenever
they are ready. The feed's listeners (``summitcast.media.greenroom``) show the
producer a preview; nothing reaches the programme until the producer *takes* the
feed, which marks it as the broadcast's live input and cuts the session to live
in the same transaction. Like the broadcast, every decision is a row: the
worker node polls the rows and plays what they say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.accounts import Permission
from summitcast.errors import ConflictError, NotFoundError
from summitcast.services import accounts
from summitcast.services import broadcast as broadcasts
from summitcast.services.programme import get_session
from summitcast.storage.tables import (
    GreenRoomFeed,
    Item,
    ItemSpeaker,
    Session,
    Speaker,
    SpeakerInvitation,
    Summit,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """What a worker needs to run one speaker's listeners."""

    feed_id: int
    session_id: int
    speaker_id: int
    slot: int
    taken: bool
    # repr=False: plans appear in log lines; keys must not.
    ingest_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class FeedView:
    """One speaker of a session as the green room page lists them."""

    speaker_id: int
    speaker_name: str
    feed: FeedPlan | None


def _plan(row: GreenRoomFeed) -> FeedPlan:
    return FeedPlan(row.id, row.session_id, row.speaker_id, row.slot, row.taken, row.ingest_key)


def session_speakers(db: DbSession, session: Session) -> list[Speaker]:
    """The speakers of a session's items, in run-of-show order, each once."""
    rows = db.scalars(
        select(Speaker)
        .join(ItemSpeaker, ItemSpeaker.speaker_id == Speaker.id)
        .join(Item, Item.id == ItemSpeaker.item_id)
        .where(Item.session_id == session.id)
        .order_by(Item.position, Speaker.name)
    )
    return list(dict.fromkeys(rows))


def _speaker_of(db: DbSession, session: Session, speaker_id: int) -> Speaker:
    speaker = next((s for s in session_speakers(db, session) if s.id == speaker_id), None)
    if speaker is None:
        raise NotFoundError("This speaker has no item in this session.")
    return speaker


def _feed(db: DbSession, session_id: int, speaker_id: int) -> GreenRoomFeed | None:
    return db.scalar(
        select(GreenRoomFeed).where(
            GreenRoomFeed.session_id == session_id, GreenRoomFeed.speaker_id == speaker_id
        )
    )


def _free_slot(db: DbSession) -> int:
    """The lowest port offset no open feed (of any summit on this install) uses."""
    used = set(db.scalars(select(GreenRoomFeed.slot)))
    return next(i for i in range(len(used) + 1) if i not in used)


def green_room(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> list[FeedView]:
    """Every speaker of the session with their open feed, if any (keys included: producers)."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    feeds = {
        row.speaker_id: _plan(row)
        for row in db.scalars(select(GreenRoomFeed).where(GreenRoomFeed.session_id == session.id))
    }
    return [FeedView(s.id, s.name, feeds.get(s.id)) for s in session_speakers(db, session)]


def open_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> FeedPlan:
    """Give a speaker of the session their own ingest key (the same one if already open)."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    _speaker_of(db, session, speaker_id)
    row = _feed(db, session.id, speaker_id)
    if row is None:
        row = GreenRoomFeed(
            summit_id=summit.id,
            session_id=session.id,
            speaker_id=speaker_id,
            ingest_key=broadcasts.new_ingest_key(),
            slot=_free_slot(db),
            taken=False,
            opened_at=utcnow(),
        )
        db.add(row)
        db.flush()
    return _plan(row)


def close_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> None:
    """Close a speaker's feed: the key stops working; if it was on air, the programme returns."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _feed(db, session.id, speaker_id)
    if row is None:
        return
    was_taken = row.taken
    db.delete(row)
    db.flush()
    if was_taken:
        plan = broadcasts.plan_of(db, summit, session.id)
        if plan.state.live:
            broadcasts.back_to_programme(db, actor, summit, session.id)


def take_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> broadcasts.BroadcastPlan:
    """Put a speaker's feed on air: it becomes the live input and the session cuts to live."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _feed(db, session.id, speaker_id)
    if row is None:
        raise ConflictError("Open this speaker's green room feed before taking it.")
    # Refuses (409) before anything changes when the session is not on air.
    plan = broadcasts.cut_to_live(db, actor, summit, session.id)
    for other in db.scalars(select(GreenRoomFeed).where(GreenRoomFeed.session_id == session.id)):
        other.taken = other.id == row.id
    db.flush()
    return plan


def release_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> None:
    """The live input is the studio again; a speaker on air leaves it for the programme."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _feed(db, session.id, speaker_id)
    if row is None or not row.taken:
        return
    row.taken = False
    db.flush()
    if broadcasts.plan_of(db, summit, session.id).state.live:
        broadcasts.back_to_programme(db, actor, summit, session.id)


def open_feeds(db: DbSession) -> list[FeedPlan]:
    """Every open feed, for the worker that runs their listeners."""
    return [_plan(row) for row in db.scalars(select(GreenRoomFeed).order_by(GreenRoomFeed.id))]


def feed_of_invitation(db: DbSession, invitation: SpeakerInvitation) -> FeedPlan | None:
    """The open feed of an invited speaker in their item's session (for their portal)."""
    item = db.get(Item, invitation.item_id)
    if item is None:
        return None
    row = _feed(db, item.session_id, invitation.speaker_id)
    return _plan(row) if row is not None else None
