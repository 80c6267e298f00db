"""Use cases of the green room: a live speaker's own ingest, seen by the producer before air.

The producer opens a feed for a speaker of the session; the speaker gets their own
RTMP stream key / SRT passphrase (never the studio's), and sends to it whenever
they are ready. The feed's listeners (``summitcast.runtime.greenroom``) show the
producer a preview; nothing reaches the programme until the producer *takes* the
feed, which marks it as the broadcast's live input and cuts the session to live
in the same transaction. Like the broadcast, every decision is a row: the
worker node polls the rows and plays what they say.

The web edge reaches the listeners only through the ``GreenRoom`` port below, which
``GreenRoomManager`` satisfies structurally; app.py hands it to the routes (web/deps.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.accounts import Permission
from summitcast.errors import ConflictError, NotFoundError
from summitcast.services import accounts, audit_trail
from summitcast.services import broadcast as broadcasts
from summitcast.services.programme import get_session
from summitcast.storage.tables import (
    Broadcast,
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


class GreenRoom(Protocol):
    """What pages ask of the green room's listeners (GreenRoomManager satisfies it)."""

    @property
    def last_error(self) -> str | None:
        """Why the listeners' last look at the database failed, or None."""

    def kick(self) -> None:
        """Have the green room and the broadcast look at the database now."""

    def status(self, feed_id: int) -> dict[str, Any] | None:
        """The listeners' view of one feed, or None if they do not run on this node."""

    def preview_frame(self, feed_id: int) -> bytes | None:
        """The latest preview JPEG of one feed, if any frame arrived yet."""

    def urls(self, plan: FeedPlan) -> dict[str, str]:
        """The URLs the speaker sends to (key included: for them and producers only)."""


class BrowserSenders(Protocol):
    """Which feeds a speaker's browser pushes to from this node (the WebRTC bridge)."""

    def sending(self, feed_id: int) -> bool:
        """Whether a browser session of this node pushes to this feed."""


@dataclass(frozen=True, slots=True)
class FeedView:
    """One speaker of a session as the green room page lists them."""

    speaker_id: int
    speaker_name: str
    feed: FeedPlan | None


def _plan(db: DbSession, row: GreenRoomFeed) -> FeedPlan:
    return FeedPlan(
        row.id, row.session_id, row.speaker_id, row.slot, _on_air(db, row), row.ingest_key
    )


def _on_air(db: DbSession, row: GreenRoomFeed) -> bool:
    """Whether a feed is its session's live input now: taken, and the broadcast unchanged since.

    The take cut the session to live; any later change of the broadcast (hold, next item,
    end, a new start) bumps its generation, so a feed taken in an earlier run or before a
    hold never comes back on air by itself when the studio goes live again.
    """
    if not row.taken or row.taken_generation is None:
        return False
    broadcast = db.get(Broadcast, row.session_id)
    return broadcast is not None and broadcast.live and broadcast.generation == row.taken_generation


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


def _free_slot(db: DbSession, max_feeds: int) -> int:
    """The lowest port offset no open feed (of any summit on this install) uses."""
    used = set(db.scalars(select(GreenRoomFeed.slot)))
    # Past the cap the ports would run into another range (Settings.port_ranges).
    free = next((i for i in range(max_feeds) if i not in used), None)
    if free is None:
        raise ConflictError(
            f"All {max_feeds} green-room feeds of this installation are open. Close a feed "
            "that is no longer needed (or raise greenroom_max_feeds) and open this one again."
        )
    return free


def green_room(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int
) -> list[FeedView]:
    """Every speaker of the session with their open feed, if any (keys included: producers)."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    feeds = {
        row.speaker_id: _plan(db, row)
        for row in db.scalars(select(GreenRoomFeed).where(GreenRoomFeed.session_id == session.id))
    }
    return [FeedView(s.id, s.name, feeds.get(s.id)) for s in session_speakers(db, session)]


def open_feed(
    db: DbSession,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    speaker_id: int,
    *,
    max_feeds: int,
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
            slot=_free_slot(db, max_feeds),
            taken=False,
            opened_at=utcnow(),
        )
        db.add(row)
        db.flush()
        audit_trail.record_event(
            db, summit, actor, "greenroom.feed_opened", f"speaker:{speaker_id}"
        )
    return _plan(db, row)


def close_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> None:
    """Close a speaker's feed: the key stops working; if it was on air, the programme returns."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _feed(db, session.id, speaker_id)
    if row is None:
        return
    was_taken = _on_air(db, row)
    db.delete(row)
    db.flush()
    audit_trail.record_event(db, summit, actor, "greenroom.feed_closed", f"speaker:{speaker_id}")
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
        other.taken_generation = plan.state.generation if other.taken else None
    db.flush()
    audit_trail.record_event(db, summit, actor, "greenroom.feed_taken", f"speaker:{speaker_id}")
    return plan


def release_feed(
    db: DbSession, actor: accounts.Actor, summit: Summit, session_id: int, speaker_id: int
) -> None:
    """The live input is the studio again; a speaker on air leaves it for the programme."""
    accounts.require(db, actor, summit, Permission.RUN_BROADCAST)
    session = get_session(db, summit, session_id)
    row = _feed(db, session.id, speaker_id)
    if row is None or not _on_air(db, row):
        return
    row.taken, row.taken_generation = False, None
    db.flush()
    audit_trail.record_event(db, summit, actor, "greenroom.feed_released", f"speaker:{speaker_id}")
    if broadcasts.plan_of(db, summit, session.id).state.live:
        broadcasts.back_to_programme(db, actor, summit, session.id)


def open_feeds(db: DbSession) -> list[FeedPlan]:
    """Every open feed, for the worker that runs their listeners."""
    return [_plan(db, row) for row in db.scalars(select(GreenRoomFeed).order_by(GreenRoomFeed.id))]


def feed_of_invitation(db: DbSession, invitation: SpeakerInvitation) -> FeedPlan | None:
    """The open feed of an invited speaker in their item's session (for their portal)."""
    item = db.get(Item, invitation.item_id)
    if item is None:
        return None
    row = _feed(db, item.session_id, invitation.speaker_id)
    return _plan(db, row) if row is not None else None


# What the green room shows as a browser's input: it reaches the listener as RTMP from
# this node's own peer, and the producer should know it is the browser, not OBS.
BROWSER_INPUT = "browser (WebRTC)"


@dataclass(frozen=True, slots=True)
class RoomFeed:
    """One speaker in the green room, with what the listeners report of their open feed."""

    speaker_id: int
    speaker_name: str
    feed: FeedPlan | None
    urls: dict[str, str] | None  # None while the feed is closed
    status: dict[str, Any] | None  # None while closed, or when no listener runs here


@dataclass(frozen=True, slots=True)
class Room:
    """The green room of one session as the producer's page shows it."""

    session: Session
    feeds: list[RoomFeed]
    manager_error: str | None


def _room_feed(view: FeedView, room: GreenRoom, browsers: BrowserSenders) -> RoomFeed:
    if view.feed is None:
        return RoomFeed(view.speaker_id, view.speaker_name, None, None, None)
    status = room.status(view.feed.feed_id)
    if status and status["receiving"] == "rtmp" and browsers.sending(view.feed.feed_id):
        status["receiving"] = BROWSER_INPUT
    return RoomFeed(view.speaker_id, view.speaker_name, view.feed, room.urls(view.feed), status)


def room_view(
    db: DbSession,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    room: GreenRoom,
    browsers: BrowserSenders,
) -> Room:
    """The green room of a session: every speaker, their feed's URLs, key and status."""
    session = get_session(db, summit, session_id)
    feeds = [_room_feed(view, room, browsers) for view in green_room(db, actor, summit, session.id)]
    return Room(session, feeds, room.last_error)


def preview_frame(
    db: DbSession,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    speaker_id: int,
    room: GreenRoom,
) -> bytes | None:
    """The latest preview frame of a speaker's feed, or None (closed, or no frame yet)."""
    feeds = green_room(db, actor, summit, get_session(db, summit, session_id).id)
    feed = next((v.feed for v in feeds if v.speaker_id == speaker_id), None)
    return room.preview_frame(feed.feed_id) if feed is not None else None


# The producer's buttons of an open feed ("open" takes the installation's cap as well).
CHANGES: dict[str, Callable[[DbSession, accounts.Actor, Summit, int, int], object]] = {
    "close": close_feed,
    "take": take_feed,
    "release": release_feed,
}


def press(
    db: DbSession,
    room: GreenRoom,
    actor: accounts.Actor,
    summit: Summit,
    session_id: int,
    speaker_id: int,
    button: str,
    *,
    max_feeds: int,
) -> None:
    """Apply one of a feed's buttons, commit it, and wake the green room and the broadcast."""
    if button == "open":
        open_feed(db, actor, summit, session_id, speaker_id, max_feeds=max_feeds)
    else:
        CHANGES[button](db, actor, summit, session_id, speaker_id)
    # Committed now, not when the request ends, so both workers' next look sees it.
    db.commit()
    room.kick()
