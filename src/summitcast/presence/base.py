"""The presence and pub/sub seams: what a web handler may ask of either back-end.

A heartbeat handler does: parse and verify the token (domain.presence) →
``accept`` (the replay refusal shared by all workers, the heartbeat and its map
cell as one step; the same as ``check_and_store_seq`` then ``heartbeat`` twice)
→ publish a snapshot when the location just came online. A periodic task calls
``expire`` and publishes when anything went offline.

Time: every ``now`` is in seconds on ONE clock shared by all callers of a back-end.
Pass ``None`` to use the back-end's own clock (in-process: ``time.monotonic()``;
Redis: the server's ``TIME``, read inside the same script, so every worker uses one
clock). Never mix explicit and ``None`` clocks on the same back-end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, Any]


class PresenceUnavailableError(ConnectionError):
    """The presence or pub/sub back-end cannot be reached for now (an operations event).

    Each back-end raises this for its own outage errors (Redis refusing, restarting or
    timing out), so callers never need to know which client library is loaded. A
    ConnectionError, so ``except OSError`` around a back-end call catches it too.
    """


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Online figures of one summit at one instant (``peak_at`` is on the back-end's clock)."""

    total: int
    by_country: dict[str, int]
    peak: int
    peak_at: float | None


class Presence(Protocol):
    """Who is online, per summit; a location is online until ``timeout_s`` after its last beat."""

    timeout_s: float

    async def heartbeat(
        self, summit_id: str, location_id: str, country: str, now: float | None = None
    ) -> bool:
        """Record a valid heartbeat; True when the location just came online."""
        ...

    async def expire(self, summit_id: str, now: float | None = None) -> list[str]:
        """Drop locations whose timeout has passed; return them (each reported once)."""
        ...

    async def online_count(self, summit_id: str, now: float | None = None) -> int:
        """How many locations are online at ``now`` (exact even if expire() lags)."""
        ...

    async def counts_by_country(self, summit_id: str, now: float | None = None) -> dict[str, int]:
        """Online locations per country at ``now``; countries with none are left out."""
        ...

    async def peak(self, summit_id: str) -> tuple[int, float | None]:
        """The highest online count seen and the ``now`` at which it was first reached."""
        ...

    async def is_online(self, summit_id: str, location_id: str, now: float | None = None) -> bool:
        """True while the location's last heartbeat is younger than the timeout."""
        ...

    async def forget(self, summit_id: str, location_id: str) -> bool:
        """Take a location out at once (revoked); True when it was being tracked."""
        ...

    async def snapshot(self, summit_id: str, now: float | None = None) -> PresenceSnapshot:
        """Total, per-country counts and peak read together."""
        ...

    async def check_and_store_seq(self, location_id: str, epoch: str, seq: int) -> bool:
        """Atomically refuse a replayed (epoch, seq) and otherwise remember it; True if fresh."""
        ...

    async def accept(
        self,
        summit_id: str,
        location_id: str,
        country: str,
        epoch: str,
        seq: int,
        cell: tuple[str, str] | None = None,
    ) -> bool | None:
        """Replay check, heartbeat and (``cell``: its summit id and key) map cell in one step.

        None when (epoch, seq) is a replay (nothing recorded); otherwise whether the
        location just came online. Uses the back-end's own clock.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Subscription(Protocol):
    """Messages of one channel, in publish order, as fresh dicts."""

    def __aiter__(self) -> AsyncIterator[Message]:
        """Iterate over messages until the subscription is closed."""
        ...

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds."""
        ...


class PubSub(Protocol):
    """Fan-out of JSON messages to every subscriber of a channel, in this and other workers."""

    async def publish(self, channel: str, message: Message) -> None:
        """Send a JSON-serialisable dict to every current subscriber of ``channel``."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe; messages published after entering the context are delivered."""
        ...

    async def close(self) -> None:
        """Stop background tasks and release connections."""
        ...
