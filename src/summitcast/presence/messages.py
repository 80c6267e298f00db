"""Channel names and the public, k-anonymous presence message pushed to browsers."""

from __future__ import annotations

from summitcast.domain.privacy import public_country_counts
from summitcast.presence.base import Message, Presence, PresenceSnapshot, PubSub


def presence_channel(summit_id: str) -> str:
    """The pub/sub channel carrying one summit's public presence figures."""
    return f"presence:{summit_id}"


def public_message(snapshot: PresenceSnapshot, k: int) -> Message:
    """What the public may see of a snapshot: countries under k fold into 'elsewhere'."""
    countries, elsewhere = public_country_counts(snapshot.by_country, k)
    # peak_at is left out: it is on the back-end's clock, which may be monotonic.
    return {
        "type": "presence",
        "total": snapshot.total,
        "countries": countries,
        "elsewhere": elsewhere,
        "peak": snapshot.peak,
    }


async def publish_snapshot(
    presence: Presence, pubsub: PubSub, summit_id: str, k: int, now: float | None = None
) -> Message:
    """Read a snapshot and publish its public form on the summit's channel."""
    message = public_message(await presence.snapshot(summit_id, now), k)
    await pubsub.publish(presence_channel(summit_id), message)
    return message


async def sweep(
    presence: Presence, pubsub: PubSub, summit_id: str, k: int, now: float | None = None
) -> list[str]:
    """Expire timed-out locations and publish a snapshot when any went offline."""
    gone = await presence.expire(summit_id, now)
    if gone:
        await publish_snapshot(presence, pubsub, summit_id, k, now)
    return gone
