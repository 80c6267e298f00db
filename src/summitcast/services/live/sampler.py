"""Presence samples for reports: one per live summit at each aligned tick."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from summitcast.presence.base import Presence, PresenceSnapshot
from summitcast.services import locations
from summitcast.storage.database import Database


class PresenceSampler:
    """Stores the online figures of live summits every sampling interval (idle ones once)."""

    def __init__(
        self,
        database: Database,
        presence: Presence,
        interval_s: float,
        wall_clock: Callable[[], float],
    ) -> None:
        self.database = database
        self.presence = presence
        self.interval_s = interval_s
        self._wall = wall_clock
        self._sampled_nonzero: set[str] = set()

    async def sample(self, summit_keys: Iterable[str], wall_now: float | None = None) -> int:
        """Store one sample per summit at the current aligned tick; returns how many."""
        interval = self.interval_s
        moment = self._wall() if wall_now is None else wall_now
        tick = datetime.fromtimestamp(math.floor(moment / interval) * interval, UTC)
        snapshots: list[tuple[int, PresenceSnapshot]] = []
        for summit_key in sorted(summit_keys):
            snapshot = await self.presence.snapshot(summit_key)
            # Idle summits are sampled once at zero (the end of the curve), then left alone.
            if snapshot.total == 0 and summit_key not in self._sampled_nonzero:
                continue
            if snapshot.total:
                self._sampled_nonzero.add(summit_key)
            else:
                self._sampled_nonzero.discard(summit_key)
            snapshots.append((int(summit_key), snapshot))
        if snapshots:
            await asyncio.to_thread(self._write, tick, snapshots)
        return len(snapshots)

    def _write(self, tick: datetime, snapshots: list[tuple[int, PresenceSnapshot]]) -> None:
        with self.database.session() as db:
            for summit_id, snapshot in snapshots:
                locations.record_sample(db, summit_id, tick, snapshot)
