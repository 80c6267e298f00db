"""Arrivals and departures of locations: buffered per worker, written in batches, announced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from summitcast.presence.base import PubSub
from summitcast.presence.names import transitions_channel
from summitcast.services import locations
from summitcast.services.locations import Transition
from summitcast.storage.database import Database


class TransitionRecorder:
    """Notes who came online and who went offline; ``flush`` stores them and tells dashboards."""

    def __init__(self, database: Database, pubsub: PubSub) -> None:
        self.database = database
        self.pubsub = pubsub
        self._arrivals: dict[str, datetime] = {}
        self._departures: dict[str, datetime] = {}

    def arrived(self, location_id: str) -> None:
        """A location came online now."""
        self._arrivals[location_id] = datetime.now(UTC)

    def departed(self, location_ids: Iterable[str]) -> None:
        """Locations went offline now."""
        moment = datetime.now(UTC)
        for location_id in location_ids:
            self._departures[location_id] = moment

    async def flush(self) -> int:
        """Write buffered arrivals and departures to the database; returns how many."""
        if not self._arrivals and not self._departures:
            return 0
        arrivals = [Transition(k, v) for k, v in self._arrivals.items()]
        departures = [Transition(k, v) for k, v in self._departures.items()]
        self._arrivals, self._departures = {}, {}
        summit_ids = await asyncio.to_thread(self._write, arrivals, departures)
        # Announced only once stored, so a dashboard that re-reads its lists finds them.
        for summit_id in sorted(summit_ids):
            await self.pubsub.publish(transitions_channel(str(summit_id)), {"type": "transitions"})
        return len(arrivals) + len(departures)

    def _write(self, arrivals: list[Transition], departures: list[Transition]) -> set[int]:
        with self.database.session() as db:
            return locations.record_transitions(db, arrivals, departures)
