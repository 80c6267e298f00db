"""Live figures: the one public message, organisers' exact view, and their pushes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator
from datetime import datetime

from summitcast.config import Settings
from summitcast.domain.presence import backoff_delay
from summitcast.domain.privacy import UNDISCLOSED, CityCell, public_city_cells
from summitcast.presence.base import Message, Presence, PresenceSnapshot, PubSub, Subscription
from summitcast.presence.coalesce import Coalescer
from summitcast.presence.names import cells_key, presence_channel, transitions_channel
from summitcast.services import locations, programme
from summitcast.services.live.outages import OUTAGE_ERRORS, OutageLog
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit

KEEPALIVE_S = 15.0
DASHBOARD_LIST_LENGTH = 20


def public_message(snapshot: PresenceSnapshot, cells: list[CityCell], k: int) -> Message:
    """What anyone may see: totals and k-anonymous countries and city dots."""
    public = public_city_cells(cells, k)
    return {
        "type": "presence",
        "total": snapshot.total,
        "peak": snapshot.peak,
        "countries": public.countries,
        "elsewhere": public.suppressed_total,
        # How many countries (a number only; which ones stays k-anonymous).
        "country_count": len([c for c in snapshot.by_country if c != UNDISCLOSED]),
        "cities": [
            {"name": c.city, "lat": c.lat, "lon": c.lon, "count": c.count} for c in public.cities
        ],
        "k": k,
    }


def organiser_message(snapshot: PresenceSnapshot, cells: list[CityCell]) -> Message:
    """What organisers see: exact counts per country (hidden ones as ZZ) and per city."""
    return {
        "type": "presence",
        "total": snapshot.total,
        "peak": snapshot.peak,
        "countries": snapshot.by_country,
        "country_count": len([c for c in snapshot.by_country if c != UNDISCLOSED]),
        "cities": [
            {"name": c.city, "lat": c.lat, "lon": c.lon, "count": c.count, "country": c.country}
            for c in cells
            if c.privacy_level == "public"
        ],
    }


def city_cells(cities: dict[str, int], snapshot: PresenceSnapshot) -> list[CityCell]:
    """Every online location as a privacy cell: public cities, then the rest per country."""
    cells: list[CityCell] = []
    in_cities: dict[str, int] = {}
    for key, count in cities.items():
        parsed = locations.parse_cell_key(key)
        if parsed is None:
            continue
        country, lat, lon, city = parsed
        cells.append(CityCell(country, city, lat, lon, "public", count))
        in_cities[country] = in_cities.get(country, 0) + count
    for country, count in snapshot.by_country.items():
        if country == UNDISCLOSED:
            cells.append(CityCell(country, "", 0.0, 0.0, "hidden", count))
            continue
        # The two reads are not one instant: never let a country go below zero.
        rest = max(0, count - in_cities.get(country, 0))
        if rest:
            cells.append(CityCell(country, "", 0.0, 0.0, "country", rest))
    return cells


class FigurePublisher:
    """Reads a summit's figures from presence, publishes changed ones, streams them."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        presence: Presence,
        pubsub: PubSub,
        outages: OutageLog,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.database = database
        self.presence = presence
        self.pubsub = pubsub
        self.outages = outages
        self._rng = rng
        self._dirty: set[str] = set()

    def changed(self, summit_key: str) -> None:
        """A summit's figures changed: publish them at the next ``publish_dirty``."""
        self._dirty.add(summit_key)

    async def summit_id(self, slug: str) -> int:
        """The id of the summit with this slug (NotFoundError when there is none)."""

        def load() -> int:
            with self.database.session() as db:
                return programme.get_summit(db, slug).id

        return await asyncio.to_thread(load)

    async def _cells(self, summit_key: str, snapshot: PresenceSnapshot) -> list[CityCell]:
        return city_cells(await self.presence.counts_by_country(cells_key(summit_key)), snapshot)

    async def public_figures(self, summit_id: int) -> Message:
        """What anyone may see: totals and k-anonymous countries and city dots."""
        summit_key = str(summit_id)
        snapshot = await self.presence.snapshot(summit_key)
        cells = await self._cells(summit_key, snapshot)
        return public_message(snapshot, cells, self.settings.k_anonymity)

    async def organiser_figures(self, summit_id: int) -> Message:
        """What organisers see: exact counts per country (hidden ones as ZZ) and per city."""
        summit_key = str(summit_id)
        snapshot = await self.presence.snapshot(summit_key)
        return organiser_message(snapshot, await self._cells(summit_key, snapshot))

    async def dashboard_lists(self, summit_id: int, country: str = "") -> Message:
        """The organiser dashboard's newest arrivals and recent drops, newest first."""

        def load() -> Message:
            with self.database.session() as db:
                summit = db.get(Summit, summit_id)
                if summit is None:  # deleted while its dashboard was open
                    return {"arrivals": [], "drops": []}
                arrived = locations.newest_arrivals(
                    db, summit, country=country, limit=DASHBOARD_LIST_LENGTH
                )
                dropped = locations.recent_drops(
                    db, summit, country=country, limit=DASHBOARD_LIST_LENGTH
                )
                return {
                    "arrivals": [_listed(loc, loc.last_online_at) for loc in arrived],
                    "drops": [_listed(loc, loc.last_offline_at) for loc in dropped],
                }

        return await asyncio.to_thread(load)

    async def _organiser_update(self, summit_id: int, country: str) -> Message:
        return {
            **await self.organiser_figures(summit_id),
            **await self.dashboard_lists(summit_id, country),
        }

    async def publish_dirty(self) -> int:
        """Publish fresh public figures of every summit that changed; returns how many."""
        dirty, self._dirty = self._dirty, set()
        for summit_key in sorted(dirty):
            message = await self.public_figures(int(summit_key))
            await self.pubsub.publish(presence_channel(summit_key), message)
        return len(dirty)

    async def figure_stream(
        self, summit_id: int, *, organiser: bool = False, country: str = ""
    ) -> AsyncGenerator[Message | None, None]:
        """Current figures, then fresh ones at most once per push interval; None = keep-alive."""
        # Organisers also get the dashboard's arrivals and drops (of ``country`` when
        # given). While a back-end is unreachable the stream stays open with keep-alives
        # and subscribes again with backoff; fresh figures follow as soon as it is back.
        summit_key = str(summit_id)
        channels = [presence_channel(summit_key)]
        if organiser:
            channels.append(transitions_channel(summit_key))
        attempt = 0
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    subscriptions = [
                        await stack.enter_async_context(self.pubsub.subscribe(channel))
                        for channel in channels
                    ]
                    async for message in self._coalesced(
                        stack, subscriptions, summit_id, organiser=organiser, country=country
                    ):
                        attempt = 0
                        yield message
                    return
            except OUTAGE_ERRORS as error:
                self.outages.failed("live figures", error)
            yield None  # a keep-alive: the client keeps its connection through the outage
            await asyncio.sleep(backoff_delay(attempt, self._rng, base=0.5, cap=10.0))
            attempt += 1

    async def _coalesced(
        self,
        stack: contextlib.AsyncExitStack,
        subscriptions: list[Subscription],
        summit_id: int,
        *,
        organiser: bool,
        country: str,
    ) -> AsyncGenerator[Message | None, None]:
        # Whole snapshots only, so the coalescer may drop all but the newest.
        coalescer: Coalescer[Message] = Coalescer(self.settings.live_push_interval_s)

        async def pump(subscription: Subscription) -> None:
            try:
                async for message in subscription:
                    coalescer.put(message)
            finally:
                coalescer.close()

        tasks = [asyncio.create_task(pump(sub)) for sub in subscriptions]

        async def stop_pumps() -> None:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        stack.push_async_callback(stop_pumps)
        if organiser:
            yield await self._organiser_update(summit_id, country)
        else:
            yield await self.public_figures(summit_id)
        while True:
            try:
                message = await asyncio.wait_for(anext(coalescer), KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            except StopAsyncIteration:
                return
            # The published message is the public one (sent as is, so thousands of
            # viewers cost no reads); organisers re-read theirs, lists included.
            yield await self._organiser_update(summit_id, country) if organiser else message


def _listed(location: Location, at: datetime | None) -> Message:
    """One line of the dashboard's arrivals or drops (organisers only: the label is shown)."""
    return {
        "label": location.label,
        "country": location.country,
        "at": at.isoformat() if at is not None else None,
    }
