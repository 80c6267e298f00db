"""Use cases of going live from the browser: which green-room feed a speaker's link sends to.

A browser is one more way to reach the speaker's own ingest: like OBS, it may send
only once the producer has opened the speaker's green-room feed, and only to that
feed (``summitcast.runtime.webrtc`` pushes it there).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession

from summitcast.errors import ConflictError
from summitcast.services import greenroom
from summitcast.storage.tables import SpeakerInvitation

NOT_OPEN = (
    "The producer has not opened your green room yet. Keep this page open and try again "
    "when they tell you to."
)


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
