"""Use cases of going live from the browser: which green-room feed a speaker's link sends to.

A browser is one more way to reach the speaker's own ingest: like OBS, it may send
only once the producer has opened the speaker's green-room feed, and only to that
feed (``summitcast.runtime.webrtc`` pushes it there). The web edge reaches that
bridge only through the ``BrowserBridge`` port below, which ``BrowserContributions``
satisfies structurally; app.py hands it to the routes (web/deps.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session as DbSession

from summitcast.domain.contribution import Offer
from summitcast.errors import ConflictError
from summitcast.services import greenroom, speakers
from summitcast.storage.tables import SpeakerInvitation

NOT_OPEN = (
    "The producer has not opened your green room yet. Keep this page open and try again "
    "when they tell you to."
)


class BrowserBridge(Protocol):
    """What pages ask of the WebRTC bridge (BrowserContributions satisfies it)."""

    async def answer(self, plan: greenroom.FeedPlan, offer: Offer) -> tuple[str, str]:
        """Answer a speaker's offer with a peer pushing to their feed; (session id, answer SDP)."""

    async def stop(self, feed_id: int, session_id: str) -> bool:
        """End a browser's session (its page asked); False if it is not the running one."""

    def status(self, feed_id: int, session_id: str) -> dict[str, Any]:
        """Where a page's own session stands: connecting, sending, or ended and why."""

    def sending(self, feed_id: int) -> bool:
        """Whether a browser session of this node pushes to this feed."""

    def browser_ice_servers(self) -> list[dict[str, str]]:
        """The STUN/TURN servers as the browser's RTCPeerConnection takes them."""


@dataclass(frozen=True, slots=True)
class ContributionView:
    """What the speaker's go-live page shows about their feed (None: not open)."""

    plan: greenroom.FeedPlan | None

    @property
    def open(self) -> bool:
        """Whether the producer has opened the speaker's green-room feed."""
        return self.plan is not None

    @property
    def on_air(self) -> bool:
        """Whether the producer took the feed on air."""
        return bool(self.plan and self.plan.taken)


def contribution_feed(db: DbSession, invitation: SpeakerInvitation) -> greenroom.FeedPlan:
    """The open green-room feed a speaker's browser sends to; 409 while none is open."""
    plan = greenroom.feed_of_invitation(db, invitation)
    if plan is None:
        raise ConflictError(NOT_OPEN)
    return plan


def contribution_view(db: DbSession, invitation: SpeakerInvitation) -> ContributionView:
    """The speaker's feed if it is open (whether it is, and on air, follow from it)."""
    return ContributionView(greenroom.feed_of_invitation(db, invitation))


@dataclass(frozen=True, slots=True)
class GoLivePage:
    """What the speaker's go-live page shows: their portal, their feed, the ICE servers."""

    portal: speakers.Portal
    feed: ContributionView
    ice_servers: list[dict[str, str]]


def go_live_page(db: DbSession, invitation: SpeakerInvitation, bridge: BrowserBridge) -> GoLivePage:
    """The speaker's go-live page (the button waits until the producer opens their feed)."""
    return GoLivePage(
        speakers.portal(db, invitation),
        contribution_view(db, invitation),
        bridge.browser_ice_servers(),
    )


async def go_live(
    db: DbSession, invitation: SpeakerInvitation, offer: Offer, bridge: BrowserBridge
) -> tuple[str, str]:
    """Answer a speaker's offer with a peer sending to their open feed; (session, answer SDP)."""
    plan = contribution_feed(db, invitation)
    db.commit()  # last_used_at of the link; no transaction held while the peer connects
    return await bridge.answer(plan, offer)


def live_status(
    db: DbSession, invitation: SpeakerInvitation, session_id: str, bridge: BrowserBridge
) -> dict[str, Any]:
    """Where a page's session stands, and whether the producer has put the feed on air."""
    view = contribution_view(db, invitation)
    status: dict[str, Any] = {"feed_open": view.open, "on_air": view.on_air}
    if view.plan is None:
        return status | {"state": "ended", "reason": "The producer closed your green room."}
    return status | bridge.status(view.plan.feed_id, session_id)


async def stop_live(
    db: DbSession, invitation: SpeakerInvitation, session_id: str, bridge: BrowserBridge
) -> None:
    """End a page's browser session (its Stop button, or the tab closing)."""
    plan = contribution_view(db, invitation).plan
    if plan is not None:
        db.commit()  # the link's last use; no transaction held while the peer closes
        await bridge.stop(plan.feed_id, session_id)
