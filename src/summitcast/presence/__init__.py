"""Who is online, and fan-out of live figures: protocols with in-process and Redis back-ends."""

from __future__ import annotations

from summitcast.config import Settings
from summitcast.presence.base import (
    Message,
    Presence,
    PresenceSnapshot,
    PresenceUnavailableError,
    PubSub,
    Subscription,
)
from summitcast.presence.coalesce import Coalescer, coalesce
from summitcast.presence.memory import MemoryPresence, MemoryPubSub

__all__ = [
    "Coalescer",
    "MemoryPresence",
    "MemoryPubSub",
    "Message",
    "Presence",
    "PresenceSnapshot",
    "PresenceUnavailableError",
    "PubSub",
    "Subscription",
    "coalesce",
    "create_backends",
]


def create_backends(settings: Settings) -> tuple[Presence, PubSub]:
    """In-process presence and pub/sub by default; Redis when ``redis_url`` is set."""
    if not settings.redis_url:
        return MemoryPresence(settings.heartbeat_timeout_s), MemoryPubSub()
    # Imported here so the embedded default does not load the Redis client at all.
    from summitcast.presence.redis import RedisPresence, RedisPubSub

    presence = RedisPresence.from_url(
        settings.redis_url, timeout_s=settings.heartbeat_timeout_s, prefix=settings.redis_prefix
    )
    return presence, RedisPubSub.from_url(settings.redis_url, prefix=settings.redis_prefix)
