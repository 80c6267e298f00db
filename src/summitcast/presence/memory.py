"""In-process presence and pub/sub: the embedded default and the reference for the Redis one."""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from summitcast.domain.presence import ReplayState, is_replay
from summitcast.presence.base import Message, PresenceSnapshot


@dataclass(slots=True)
class _Summit:
    last_seen: dict[str, float] = field(default_factory=dict)
    country: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # (last_seen, location_id); superseded entries stay until popped (lazy deletion).
    heap: list[tuple[float, str]] = field(default_factory=list)
    peak: int = 0
    peak_at: float | None = None

    def is_current(self, entry: tuple[float, str]) -> bool:
        return self.last_seen.get(entry[1]) == entry[0]

    def stale(self, cutoff: float) -> list[str]:
        """Tracked locations last seen at or before ``cutoff``, without changing anything."""
        # Walk the heap from the root: a node's children are never smaller, so only
        # stale nodes and their direct children are visited.
        found: list[str] = []
        pending = [0] if self.heap else []
        while pending:
            i = pending.pop()
            entry = self.heap[i]
            if entry[0] > cutoff:
                continue
            if self.is_current(entry):
                found.append(entry[1])
            pending.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(self.heap))
        return found

    def add_count(self, country: str, delta: int) -> None:
        count = self.counts.get(country, 0) + delta
        if count > 0:
            self.counts[country] = count
        else:
            self.counts.pop(country, None)

    def drop(self, location_id: str) -> None:
        del self.last_seen[location_id]
        self.add_count(self.country.pop(location_id), -1)


class MemoryPresence:
    """Presence in dicts plus a heap ordered by last heartbeat: O(log n) per heartbeat."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self._clock = clock
        self._summits: dict[str, _Summit] = {}
        self._replay: dict[str, ReplayState] = {}

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _get(self, summit_id: str) -> _Summit:
        # Reads never create state: an unknown summit is simply empty.
        return self._summits.get(summit_id) or _Summit()

    async def heartbeat(
        self, summit_id: str, location_id: str, country: str, now: float | None = None
    ) -> bool:
        """Record a valid heartbeat; True when the location just came online."""
        t = self._now(now)
        s = self._summits.setdefault(summit_id, _Summit())
        cutoff = t - self.timeout_s
        old = s.last_seen.get(location_id)
        if old is None:
            s.last_seen[location_id] = t
            s.country[location_id] = country
            s.add_count(country, 1)
            heapq.heappush(s.heap, (t, location_id))
            came_online = True
        else:
            # Still tracked but past its timeout: expire() has not run yet, yet by the
            # online rule it was offline, so this beat brings it back online.
            came_online = old <= cutoff
            previous = s.country[location_id]
            if previous != country:
                s.add_count(previous, -1)
                s.add_count(country, 1)
                s.country[location_id] = country
            # Keep the latest beat: a worker whose clock lags must not age a location.
            if t > old:
                s.last_seen[location_id] = t
                heapq.heappush(s.heap, (t, location_id))
        if came_online:
            total = len(s.last_seen) - len(s.stale(cutoff))
            if total > s.peak:
                s.peak, s.peak_at = total, t
        return came_online

    async def expire(self, summit_id: str, now: float | None = None) -> list[str]:
        """Drop locations whose timeout has passed; return them (each reported once)."""
        s = self._summits.get(summit_id)
        if s is None:
            return []
        cutoff = self._now(now) - self.timeout_s
        gone: list[str] = []
        while s.heap and s.heap[0][0] <= cutoff:
            entry = heapq.heappop(s.heap)
            if s.is_current(entry):
                s.drop(entry[1])
                gone.append(entry[1])
        return gone

    async def online_count(self, summit_id: str, now: float | None = None) -> int:
        """How many locations are online at ``now`` (exact even if expire() lags)."""
        s = self._get(summit_id)
        return len(s.last_seen) - len(s.stale(self._now(now) - self.timeout_s))

    async def counts_by_country(self, summit_id: str, now: float | None = None) -> dict[str, int]:
        """Online locations per country at ``now``; countries with none are left out."""
        s = self._get(summit_id)
        counts = dict(s.counts)
        for location_id in s.stale(self._now(now) - self.timeout_s):
            counts[s.country[location_id]] -= 1
        return {country: n for country, n in sorted(counts.items()) if n > 0}

    async def peak(self, summit_id: str) -> tuple[int, float | None]:
        """The highest online count seen and the ``now`` at which it was first reached."""
        s = self._get(summit_id)
        return s.peak, s.peak_at

    async def is_online(self, summit_id: str, location_id: str, now: float | None = None) -> bool:
        """True while the location's last heartbeat is younger than the timeout."""
        last = self._get(summit_id).last_seen.get(location_id)
        return last is not None and self._now(now) - last < self.timeout_s

    async def forget(self, summit_id: str, location_id: str) -> bool:
        """Take a location out at once (revoked); True when it was being tracked."""
        s = self._summits.get(summit_id)
        if s is None or location_id not in s.last_seen:
            return False
        s.drop(location_id)
        return True

    async def snapshot(self, summit_id: str, now: float | None = None) -> PresenceSnapshot:
        """Total, per-country counts and peak read together."""
        t = self._now(now)
        by_country = await self.counts_by_country(summit_id, t)
        s = self._get(summit_id)
        return PresenceSnapshot(sum(by_country.values()), by_country, s.peak, s.peak_at)

    async def check_and_store_seq(self, location_id: str, epoch: str, seq: int) -> bool:
        """Refuse a replayed (epoch, seq) and otherwise remember it; True if fresh."""
        if is_replay(self._replay.get(location_id), epoch, seq):
            return False
        self._replay[location_id] = ReplayState(epoch, seq)
        return True

    async def accept(
        self,
        summit_id: str,
        location_id: str,
        country: str,
        epoch: str,
        seq: int,
        cell: tuple[str, str] | None = None,
    ) -> bool | None:
        """Replay check, heartbeat and map cell in one step; None for a replay."""
        if not await self.check_and_store_seq(location_id, epoch, seq):
            return None
        came_online = await self.heartbeat(summit_id, location_id, country)
        if cell is not None:
            await self.heartbeat(cell[0], location_id, cell[1])
        return came_online

    async def close(self) -> None:
        """Nothing to release."""


class LocalSubscription:
    """One subscriber's queue; when it falls behind, the oldest messages are dropped."""

    def __init__(self, max_pending: int = 1000) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._max_pending = max_pending
        self.dropped = 0

    def deliver(self, raw: str | None) -> None:
        """Queue one JSON message (None closes the subscription)."""
        # A slow WebSocket must not make the worker hold an unbounded backlog:
        # presence messages are whole snapshots, so the newest ones matter most.
        while self._queue.qsize() >= self._max_pending:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(raw)

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds or once closed."""
        try:
            raw = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if raw is None:
            self._queue.put_nowait(None)  # stay closed for later readers
            return None
        message: Message = json.loads(raw)
        return message

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Iterate over messages until the subscription is closed."""
        while (message := await self.get()) is not None:
            yield message


class LocalHub:
    """Channel → subscriber queues inside one process."""

    def __init__(self) -> None:
        self._channels: dict[str, set[LocalSubscription]] = {}

    def add(self, channel: str) -> LocalSubscription:
        """Register a new subscriber queue."""
        sub = LocalSubscription()
        self._channels.setdefault(channel, set()).add(sub)
        return sub

    def remove(self, channel: str, sub: LocalSubscription) -> None:
        """Unregister a subscriber queue."""
        subs = self._channels.get(channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._channels[channel]

    def deliver(self, channel: str, raw: str) -> None:
        """Hand one JSON message to every subscriber of ``channel``."""
        for sub in self._channels.get(channel, ()):
            sub.deliver(raw)

    def close(self) -> None:
        """End every subscription."""
        for subs in self._channels.values():
            for sub in subs:
                sub.deliver(None)
        self._channels.clear()


def encode_message(message: Message) -> str:
    """Serialise a message once, so every back-end delivers the same JSON round trip."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class MemoryPubSub:
    """Pub/sub between tasks of one process."""

    def __init__(self) -> None:
        self._hub = LocalHub()

    async def publish(self, channel: str, message: Message) -> None:
        """Send a JSON-serialisable dict to every current subscriber of ``channel``."""
        self._hub.deliver(channel, encode_message(message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[LocalSubscription]:
        """Subscribe; messages published after entering the context are delivered."""
        sub = self._hub.add(channel)
        try:
            yield sub
        finally:
            self._hub.remove(channel, sub)

    async def close(self) -> None:
        """End every subscription."""
        self._hub.close()
