"""LiveService: the presence use cases of one worker, composed of the parts of this package."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from summitcast.config import Settings
from summitcast.domain.presence import Heartbeat, next_interval, parse_heartbeat
from summitcast.domain.presence_wire import Reason, parse_message
from summitcast.presence.base import Message, Presence, PubSub
from summitcast.presence.names import CHANGES_CHANNEL, cells_key
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.live.figures import FigurePublisher
from summitcast.services.live.identities import IdentityCache, verify
from summitcast.services.live.outages import OUTAGE_ERRORS, OutageLog
from summitcast.services.live.sampler import PresenceSampler
from summitcast.services.live.transitions import TransitionRecorder
from summitcast.storage.database import Database

log = logging.getLogger("summitcast.services.live")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one heartbeat."""

    location_id: str | None
    reason: Reason | None = None
    # The seq to acknowledge: set only for an accepted heartbeat that asked for an ack.
    ack_seq: int | None = None

    @property
    def ok(self) -> bool:
        """True when the heartbeat was counted."""
        return self.reason is None


MALFORMED = Outcome(None, Reason.MALFORMED)


class LiveService:
    """The presence use cases of one worker: heartbeats, sweeps, samples and pushes."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        presence: Presence,
        pubsub: PubSub,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.presence = presence
        self.pubsub = pubsub
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        # Opens the sealed link secrets of locations when identities are (re)read.
        self.links = LinkSecrets.of(settings)
        self.identities = IdentityCache(database, self.links)
        self.outages = OutageLog(log)
        self.figures = FigurePublisher(
            settings=settings,
            database=database,
            presence=presence,
            pubsub=pubsub,
            outages=self.outages,
            rng=self._rng,
        )
        self.transitions = TransitionRecorder(database, pubsub)
        self.sampler = PresenceSampler(
            database, presence, settings.presence_sample_interval_s, wall_clock
        )
        # The summits this worker sweeps and samples: any with an approved location.
        self.summits: set[str] = set()
        # Called once per accepted heartbeat (services.attendance counts buckets); O(1), no I/O.
        self.on_accepted: Callable[[str], None] | None = None

    # --- heartbeats (the wire protocol: web/transport/presence_protocol.py) -----------

    def hello(self) -> Message:
        """The greeting of a location screen: its (jittered) heartbeat interval and the timeout."""
        interval = next_interval(self.settings.heartbeat_interval_s, self._rng)
        return {
            "type": "hello",
            "interval_s": round(interval, 2),
            "timeout_s": self.settings.heartbeat_timeout_s,
        }

    async def heartbeat(self, token: str, *, bound_to: str | None = None) -> Outcome:
        """Verify a heartbeat token and count its location; refusals are never counted."""
        parsed = parse_heartbeat(token)
        if parsed is None:
            return MALFORMED
        return await self.count(parsed, bound_to=bound_to)

    async def heartbeat_message(self, text: str, *, bound_to: str | None = None) -> Outcome:
        """Handle one JSON message of a location screen ({"type": "hb", "token": …})."""
        message = parse_message(text)
        if message is None:
            return MALFORMED
        outcome = await self.count(message.heartbeat, bound_to=bound_to)
        # Load tools and screens ask for an ack (a socket that takes sends may be dead).
        if outcome.ok and message.ack:
            return Outcome(outcome.location_id, ack_seq=message.heartbeat.seq)
        return outcome

    async def count(self, heartbeat: Heartbeat, *, bound_to: str | None = None) -> Outcome:
        """Verify a parsed heartbeat against its location and count it once."""
        location_id = heartbeat.location_id
        if bound_to is not None and location_id != bound_to:
            return Outcome(location_id, Reason.WRONG_LOCATION)
        identity = await self.identities.get(location_id)
        if identity is None:
            return Outcome(location_id, Reason.UNKNOWN)
        refusal = verify(heartbeat, identity, self._wall(), self.settings.heartbeat_max_skew_s)
        if refusal is not None:
            return Outcome(location_id, refusal)
        summit_key = identity.summit_key
        cell = None if identity.cell_key is None else (cells_key(summit_key), identity.cell_key)
        # Replay refusal (shared by all workers), presence and map cell as one step.
        came_online = await self.presence.accept(
            summit_key, location_id, identity.country_key, heartbeat.epoch, heartbeat.seq, cell
        )
        if came_online is None:
            return Outcome(location_id, Reason.REPLAY)
        if came_online:
            self.transitions.arrived(location_id)
            self.figures.changed(summit_key)
        self.summits.add(summit_key)
        if self.on_accepted is not None:
            self.on_accepted(location_id)
        return Outcome(location_id)

    def summit_of(self, location_id: str) -> str | None:
        """The summit key of a location this worker knows (it has read its identity), else None."""
        identity = self.identities.cached(location_id)
        return None if identity is None else identity.summit_key

    def forget_identity(self, location_id: str) -> None:
        """Drop a cached identity so that the next heartbeat reads the database."""
        self.identities.forget(location_id)

    # --- changes of locations ---------------------------------------------------------

    async def location_changed(self, summit_id: int, location_id: str, *, offline: bool) -> None:
        """After approve, revoke or a new secret: drop cached identities everywhere."""
        # offline=True takes the location out of presence at once (revoked, or its old
        # secret must stop counting now rather than at the timeout).
        self.forget_identity(location_id)
        summit_key = str(summit_id)
        change = {"location_id": location_id, "summit": summit_key, "offline": offline}
        try:
            await self.pubsub.publish(CHANGES_CHANNEL, change)
            if offline:
                await self._take_offline(summit_key, location_id)
        except OUTAGE_ERRORS as error:
            # The change is committed: other workers re-read identities within
            # IDENTITY_TTL_S, and a location whose beats are refused times out.
            self.outages.failed("location change", error)

    async def _take_offline(self, summit_key: str, location_id: str) -> None:
        gone = await self.presence.forget(summit_key, location_id)
        await self.presence.forget(cells_key(summit_key), location_id)
        if gone:
            self.transitions.departed([location_id])
            self.figures.changed(summit_key)

    async def follow_changes(self) -> None:
        """Apply the changes other workers announce until the subscription ends."""
        async with self.pubsub.subscribe(CHANGES_CHANNEL) as subscription:
            async for message in subscription:
                await self._changed_elsewhere(message)

    async def _changed_elsewhere(self, change: Message) -> None:
        """A location changed on another worker: drop its identity here (and its presence)."""
        location_id, summit_key = change.get("location_id"), change.get("summit")
        if not isinstance(location_id, str):
            return
        self.forget_identity(location_id)
        if change.get("offline") is True and isinstance(summit_key, str):
            # A heartbeat this worker verified against its cached, now old identity can
            # land after the other worker's forget and count the location again until
            # the timeout. Once the cache is dropped no such beat passes here: forget
            # once more so the old secret stops counting now.
            try:
                await self._take_offline(summit_key, location_id)
            except OUTAGE_ERRORS as error:
                self.outages.failed("location change", error)

    # --- figures ----------------------------------------------------------------------

    async def summit_id(self, slug: str) -> int:
        """The id of the summit with this slug (NotFoundError when there is none)."""
        return await self.figures.summit_id(slug)

    async def public_figures(self, summit_id: int) -> Message:
        """What anyone may see: totals and k-anonymous countries and city dots."""
        return await self.figures.public_figures(summit_id)

    async def organiser_figures(self, summit_id: int) -> Message:
        """What organisers see: exact counts per country (hidden ones as ZZ) and per city."""
        return await self.figures.organiser_figures(summit_id)

    async def dashboard_lists(self, summit_id: int, country: str = "") -> Message:
        """The organiser dashboard's newest arrivals and recent drops, newest first."""
        return await self.figures.dashboard_lists(summit_id, country)

    def figure_stream(
        self, summit_id: int, *, organiser: bool = False, country: str = ""
    ) -> AsyncGenerator[Message | None, None]:
        """Current figures, then fresh ones at most once per push interval; None = keep-alive."""
        return self.figures.figure_stream(summit_id, organiser=organiser, country=country)

    # --- background work (run by runtime/presence_tasks.py) ---------------------------

    async def publish_dirty(self) -> int:
        """Publish fresh public figures of every summit that changed; returns how many."""
        return await self.figures.publish_dirty()

    async def sweep(self, now: float | None = None) -> list[str]:
        """Expire locations whose timeout has passed (never sooner); returns their ids."""
        gone_all: list[str] = []
        for summit_key in sorted(self.summits):
            gone = await self.presence.expire(summit_key, now)
            await self.presence.expire(cells_key(summit_key), now)
            if gone:
                self.transitions.departed(gone)
                self.figures.changed(summit_key)
                gone_all.extend(gone)
        return gone_all

    async def flush_transitions(self) -> int:
        """Write buffered arrivals and departures to the database; returns how many."""
        return await self.transitions.flush()

    async def refresh_summits(self) -> None:
        """Learn the live summits (every worker sweeps them) and cache their identities."""
        await self.identities.refresh(self.summits)

    async def sample(self, wall_now: float | None = None) -> int:
        """Store one presence sample per live summit at the current aligned tick."""
        return await self.sampler.sample(self.summits, wall_now)

    async def refresh_and_sample(self) -> None:
        """Re-read the live summits' identities, then sample them (one sampling tick)."""
        await self.refresh_summits()
        await self.sample()

    async def stop(self) -> None:
        """Write what is buffered and close the back-ends (the background tasks have ended)."""
        with contextlib.suppress(Exception):
            await self.flush_transitions()
        await self.pubsub.close()
        await self.presence.close()
