"""Live presence: verify heartbeats, keep counts, push k-anonymous figures, sample for reports.

Wire protocol of a location screen (frontend/src/live.js, ``locationScreen``):

- WebSocket ``/live/ws``. The server greets with
  ``{"type": "hello", "interval_s": <jittered seconds>, "timeout_s": <seconds>}``.
  The screen then sends ``{"type": "hb", "token": "hb1.…"}`` every interval (other
  fields of the message are ignored but ``ack``: the token alone is checked, see
  domain/presence.py). Nothing is sent back for an accepted heartbeat; a refused one
  gets ``{"type": "error", "reason": <Refusal>}``. A client that adds ``"ack": true``
  to a heartbeat gets ``{"type": "ack", "seq": n}`` once it is counted: location
  screens ask for it to know that their socket is alive (a dead one still takes sends),
  the load tool to measure latency. A pending or revoked location keeps
  its socket (so approval takes effect at the next beat, with no reconnect storm);
  a malformed or forged token closes it (code 1008).
- A screen that opens ``/live/ws?push=on_air`` is also sent
  ``{"type": "on_air", …}`` (what it plays, now and next) once its first heartbeat
  counts and whenever the broadcast changes (web/on_air.py); others never get one.
- While a back-end (Redis, the database) is unreachable a heartbeat gets
  ``{"type": "error", "reason": "unavailable"}`` and the socket stays open: the
  screen's next heartbeats count again as soon as the back-end is back.
- HTTP fallback: ``POST /live/heartbeat`` with the same JSON; 200
  ``{"ok": true, "interval_s": …}``, 4xx ``{"ok": false, "reason": …}``, or 503
  with Retry-After and reason ``unavailable`` during a back-end outage.

One heartbeat costs a dictionary look-up (identities are cached per worker), one
HMAC, one replay check and one presence update in the back-end; the database is
read only on a cache miss and written in batches by the background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from summitcast.config import Settings
from summitcast.domain.presence import (
    backoff_delay,
    next_interval,
    parse_heartbeat,
    verify_heartbeat,
)
from summitcast.domain.privacy import UNDISCLOSED, CityCell, public_city_cells
from summitcast.presence.base import Message, Presence, PresenceSnapshot, PubSub, Subscription
from summitcast.presence.coalesce import Coalescer
from summitcast.presence.messages import presence_channel
from summitcast.services import locations
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.locations import PresenceIdentity, Transition
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit

log = logging.getLogger(__name__)

# Other workers drop cached identities named on this channel (approve, revoke).
CHANGES_CHANNEL = "location-changes"
# A cached identity is re-read after this long even if no change message arrived
# (a message lost while Redis restarts must not keep a revoked location counted);
# every sampling tick also reloads all identities of live summits in one query.
IDENTITY_TTL_S = 120.0
# Organiser dashboards re-read arrivals and drops when this channel names their summit.
TRANSITIONS_CHANNEL = "location-transitions"
IDENTITY_PAGE = 1000  # identities read per query when all are refreshed
IDENTITY_PAGE_PAUSE_S = 0.05  # the event loop's own time between two pages
MAX_MESSAGE_CHARS = 1024  # a heartbeat message is ~150 characters
KEEPALIVE_S = 15.0
DASHBOARD_LIST_LENGTH = 20


class Reason(StrEnum):
    """Why a heartbeat was refused, as sent to the client."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    FUTURE = "future"
    REPLAY = "replay"
    UNKNOWN = "unknown_location"
    PENDING = "pending"
    REVOKED = "revoked"
    WRONG_LOCATION = "wrong_location"
    UNAVAILABLE = "unavailable"
    SIMULATED = "simulated"  # the demo's simulated audience, beating outside a demo summit


# Refusals after which a WebSocket is closed: no honest screen sends these.
CLOSING = frozenset({Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN, Reason.WRONG_LOCATION})


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


def outage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a back-end is unreachable for now (an operations event, not a bug)."""
    # OSError covers refused and reset connections and the built-in TimeoutError.
    errors: list[type[BaseException]] = [OSError, OperationalError, PoolTimeoutError]
    # Only a loaded Redis client can raise its errors, and the embedded default never
    # loads it; the Redis back-ends are built before LiveService, so it is loaded by now.
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None:
        # BusyLoadingError (Redis restarting) and MaxConnectionsError are ConnectionErrors.
        errors += [redis_errors.ConnectionError, redis_errors.TimeoutError]
    return tuple(errors)


class OutageLog:
    """Logs a back-end outage: one warning at its start, a tally while it lasts, one at its end."""

    # A Redis restart under 30,000 screens fails thousands of heartbeats a second: a
    # traceback (or even a line) per failure would bury the log and slow the worker.
    # The end is declared after quiet_s without a failure (settle() from a background
    # tick), so the hot path never has to report its successes.

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 10.0,
        quiet_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every_s = every_s
        self._quiet_s = quiet_s
        self._clock = clock
        self._since: float | None = None
        self._last_line = 0.0
        self._last_failure = 0.0
        self._unreported = 0
        self.failures = 0  # since the start of the current outage

    @property
    def active(self) -> bool:
        """True from the first failure until ``settle`` declares the outage over."""
        return self._since is not None

    def failed(self, where: str, error: BaseException) -> None:
        """Note one failure; logs at most one line per ``every_s``."""
        now = self._clock()
        self.failures += 1
        self._unreported += 1
        self._last_failure = now
        if self._since is None:
            self._since, self._last_line, self._unreported = now, now, 0
            self._log.warning("presence back-end unavailable (%s: %s); degrading", where, error)
        elif now - self._last_line >= self._every_s:
            self._log.warning(
                "presence back-end still unavailable after %.0f s (%d failures since the last"
                " line; last: %s: %s)",
                now - self._since,
                self._unreported,
                where,
                error,
            )
            self._last_line, self._unreported = now, 0

    def settle(self) -> None:
        """Log the end of an outage once no failure was seen for ``quiet_s``."""
        if self._since is None or self._clock() - self._last_failure < self._quiet_s:
            return
        self._log.warning(
            "presence back-end back: unavailable for %.1f s (%d failures)",
            self._last_failure - self._since,
            self.failures,
        )
        self._since, self.failures, self._unreported = None, 0, 0


def transitions_channel(summit_key: str) -> str:
    """The channel on which a summit's arrivals and drops are announced (after they are stored)."""
    return f"{TRANSITIONS_CHANNEL}:{summit_key}"


def cells_key(summit_key: str) -> str:
    """The presence 'summit' under which public cities are counted, one key per city."""
    return f"{summit_key}:cells"


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
        # Opens the sealed link secrets of locations when identities are (re)read.
        self.links = LinkSecrets.of(settings)
        self._unopenable_logged = False
        self.database = database
        self.presence = presence
        self.pubsub = pubsub
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        # Identity and when it was last read apart: a refresh that finds a location
        # unchanged only stores a float (not tracked by the garbage collector), so the
        # 30,000 cached identities are not re-made every tick and rescanned by every full
        # collection (a full collection over a worker's heap paused it for seconds).
        self._identities: dict[str, PresenceIdentity | None] = {}
        self._identity_read_at: dict[str, float] = {}
        self._arrivals: dict[str, datetime] = {}
        self._departures: dict[str, datetime] = {}
        self._dirty: set[str] = set()
        self._summits: set[str] = set()
        self._sampled_nonzero: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._forgotten_during_refresh: set[str] | None = None
        self.outage_errors = outage_errors()
        self.outages = OutageLog(log)
        # Called once per accepted heartbeat (services.attendance counts buckets); O(1), no I/O.
        self.on_accepted: Callable[[str], None] | None = None

    # --- heartbeats -------------------------------------------------------------------

    def hello(self) -> Message:
        """The greeting of a location screen: its (jittered) heartbeat interval and the timeout."""
        interval = next_interval(self.settings.heartbeat_interval_s, self._rng)
        return {
            "type": "hello",
            "interval_s": round(interval, 2),
            "timeout_s": self.settings.heartbeat_timeout_s,
        }

    def forget_identity(self, location_id: str) -> None:
        """Drop a cached identity so that the next heartbeat reads the database."""
        self._identities.pop(location_id, None)
        self._identity_read_at.pop(location_id, None)
        if self._forgotten_during_refresh is not None:
            self._forgotten_during_refresh.add(location_id)

    async def _identity(self, location_id: str) -> PresenceIdentity | None:
        now = time.monotonic()
        if now - self._identity_read_at.get(location_id, -IDENTITY_TTL_S) < IDENTITY_TTL_S:
            return self._identities.get(location_id)
        identity = await asyncio.to_thread(self._load_identity, location_id)
        # Unknown ids are cached too, so a flood of one forged id does not reach the database.
        if len(self._identities) > 200_000:
            self._identities.clear()
            self._identity_read_at.clear()
        self._remember(location_id, identity, now)
        return identity

    def summit_of(self, location_id: str) -> str | None:
        """The summit key of a location this worker knows (it has read its identity), else None."""
        identity = self._identities.get(location_id)
        return None if identity is None else identity.summit_key

    def _remember(self, location_id: str, identity: PresenceIdentity | None, now: float) -> None:
        # Keep the cached object when nothing changed (see _identity_read_at).
        if location_id not in self._identities or self._identities[location_id] != identity:
            self._identities[location_id] = identity
        self._identity_read_at[location_id] = now

    def _load_identity(self, location_id: str) -> PresenceIdentity | None:
        with self.database.session() as db:
            return locations.load_identity(db, location_id, self.links, self._identities)

    async def heartbeat(self, token: str, *, bound_to: str | None = None) -> Outcome:
        """Verify a heartbeat token and count its location; refusals are never counted."""
        parsed = parse_heartbeat(token)
        if parsed is None:
            return Outcome(None, Reason.MALFORMED)
        location_id = parsed.location_id
        if bound_to is not None and location_id != bound_to:
            return Outcome(location_id, Reason.WRONG_LOCATION)
        identity = await self._identity(location_id)
        if identity is None:
            return Outcome(location_id, Reason.UNKNOWN)
        # Replay is checked by the back-end below (shared by all workers), hence None here.
        verdict = verify_heartbeat(
            parsed, identity.secret, self._wall(), None, self.settings.heartbeat_max_skew_s
        )
        if verdict.refusal is not None:
            return Outcome(location_id, Reason(verdict.refusal.value))
        # The signature is checked before the status: only the secret's holder learns it.
        if identity.status != "approved":
            return Outcome(
                location_id, Reason.PENDING if identity.status == "pending" else Reason.REVOKED
            )
        if identity.simulated_outside_demo:
            # Simulated traffic never counts towards a real summit: not online, not attended.
            return Outcome(location_id, Reason.SIMULATED)
        summit_key = identity.summit_key
        cell = None if identity.cell_key is None else (cells_key(summit_key), identity.cell_key)
        # Replay refusal (shared by all workers), presence and map cell as one step.
        came_online = await self.presence.accept(
            summit_key, location_id, identity.country_key, parsed.epoch, parsed.seq, cell
        )
        if came_online is None:
            return Outcome(location_id, Reason.REPLAY)
        if came_online:
            self._arrivals[location_id] = datetime.now(UTC)
            self._dirty.add(summit_key)
        self._summits.add(summit_key)
        if self.on_accepted is not None:
            self.on_accepted(location_id)
        return Outcome(location_id)

    async def heartbeat_message(self, text: str, *, bound_to: str | None = None) -> Outcome:
        """Handle one JSON message of a location screen ({"type": "hb", "token": …})."""
        if len(text) > MAX_MESSAGE_CHARS:
            return Outcome(None, Reason.MALFORMED)
        try:
            message = json.loads(text)
        except ValueError:
            return Outcome(None, Reason.MALFORMED)
        token = message.get("token") if isinstance(message, dict) else None
        if not isinstance(token, str):
            return Outcome(None, Reason.MALFORMED)
        outcome = await self.heartbeat(token, bound_to=bound_to)
        # Load tools ask for an ack to measure latency; screens do not and get none.
        if outcome.ok and message.get("ack") is True:
            return Outcome(outcome.location_id, ack_seq=int(token.split(".")[3]))
        return outcome

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
        except self.outage_errors as error:
            # The change is committed: other workers re-read identities within
            # IDENTITY_TTL_S, and a location whose beats are refused times out.
            self.outages.failed("location change", error)

    async def _take_offline(self, summit_key: str, location_id: str) -> None:
        gone = await self.presence.forget(summit_key, location_id)
        await self.presence.forget(cells_key(summit_key), location_id)
        if gone:
            self._departures[location_id] = datetime.now(UTC)
            self._dirty.add(summit_key)

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
            except self.outage_errors as error:
                self.outages.failed("location change", error)

    # --- figures ----------------------------------------------------------------------

    async def _cells(self, summit_key: str, snapshot: PresenceSnapshot) -> list[CityCell]:
        """Every online location as a privacy cell: public cities, then the rest per country."""
        cities = await self.presence.counts_by_country(cells_key(summit_key))
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

    async def public_figures(self, summit_id: int) -> Message:
        """What anyone may see: totals and k-anonymous countries and city dots."""
        summit_key = str(summit_id)
        snapshot = await self.presence.snapshot(summit_key)
        public = public_city_cells(
            await self._cells(summit_key, snapshot), self.settings.k_anonymity
        )
        return {
            "type": "presence",
            "total": snapshot.total,
            "peak": snapshot.peak,
            "countries": public.countries,
            "elsewhere": public.suppressed_total,
            # How many countries (a number only; which ones stays k-anonymous).
            "country_count": len([c for c in snapshot.by_country if c != UNDISCLOSED]),
            "cities": [
                {"name": c.city, "lat": c.lat, "lon": c.lon, "count": c.count}
                for c in public.cities
            ],
            "k": self.settings.k_anonymity,
        }

    async def organiser_figures(self, summit_id: int) -> Message:
        """What organisers see: exact counts per country (hidden ones as ZZ) and per city."""
        summit_key = str(summit_id)
        snapshot = await self.presence.snapshot(summit_key)
        cities = [
            {"name": c.city, "lat": c.lat, "lon": c.lon, "count": c.count, "country": c.country}
            for c in await self._cells(summit_key, snapshot)
            if c.privacy_level == "public"
        ]
        return {
            "type": "presence",
            "total": snapshot.total,
            "peak": snapshot.peak,
            "countries": snapshot.by_country,
            "country_count": len([c for c in snapshot.by_country if c != UNDISCLOSED]),
            "cities": cities,
        }

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
            except self.outage_errors as error:
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

    # --- background work --------------------------------------------------------------

    async def publish_dirty(self) -> int:
        """Publish fresh public figures of every summit that changed; returns how many."""
        dirty, self._dirty = self._dirty, set()
        for summit_key in sorted(dirty):
            message = await self.public_figures(int(summit_key))
            await self.pubsub.publish(presence_channel(summit_key), message)
        return len(dirty)

    async def sweep(self, now: float | None = None) -> list[str]:
        """Expire locations whose timeout has passed (never sooner); returns their ids."""
        gone_all: list[str] = []
        for summit_key in sorted(self._summits):
            gone = await self.presence.expire(summit_key, now)
            await self.presence.expire(cells_key(summit_key), now)
            if gone:
                moment = datetime.now(UTC)
                for location_id in gone:
                    self._departures[location_id] = moment
                self._dirty.add(summit_key)
                gone_all.extend(gone)
        return gone_all

    async def flush_transitions(self) -> int:
        """Write buffered arrivals and departures to the database; returns how many."""
        if not self._arrivals and not self._departures:
            return 0
        arrivals = [Transition(k, v) for k, v in self._arrivals.items()]
        departures = [Transition(k, v) for k, v in self._departures.items()]
        self._arrivals, self._departures = {}, {}
        summit_ids = await asyncio.to_thread(self._write_transitions, arrivals, departures)
        # Announced only once stored, so a dashboard that re-reads its lists finds them.
        for summit_id in sorted(summit_ids):
            await self.pubsub.publish(transitions_channel(str(summit_id)), {"type": "transitions"})
        return len(arrivals) + len(departures)

    def _write_transitions(
        self, arrivals: list[Transition], departures: list[Transition]
    ) -> set[int]:
        with self.database.session() as db:
            return locations.record_transitions(db, arrivals, departures)

    async def refresh_summits(self) -> None:
        """Learn the live summits (every worker sweeps them) and cache their identities."""
        # A page at a time, with a pause between pages: building 30,000 identities in one
        # go ran a thread that held the GIL against the event loop for over a second,
        # and every heartbeat of the worker waited (benchmarks/presence_load.py).
        after = 0
        while True:
            self._forgotten_during_refresh = set()
            identities, after = await asyncio.to_thread(self._live_identities, after)
            # An approve or revoke that landed while the query ran may be newer than its rows.
            skip, self._forgotten_during_refresh = self._forgotten_during_refresh, None
            now = time.monotonic()
            for identity in identities:
                if identity.location_id in skip:
                    continue
                if not identity.secret and identity.sealed_secret:
                    self._cannot_open(identity)
                self._remember(identity.location_id, identity, now)
                if identity.status == "approved":
                    self._summits.add(identity.summit_key)
            if len(identities) < IDENTITY_PAGE:
                return
            await asyncio.sleep(IDENTITY_PAGE_PAUSE_S)

    def _live_identities(self, after: int) -> tuple[list[PresenceIdentity], int]:
        with self.database.session() as db:
            return locations.identities_of_live_summits(
                db, self.links, after_id=after, limit=IDENTITY_PAGE, known=self._identities
            )

    def _cannot_open(self, identity: PresenceIdentity) -> None:
        # Once per worker: every location sealed under another key fails the same way.
        if not self._unopenable_logged:
            self._unopenable_logged = True
            log.warning(
                "a location's link secret does not open with this app key: was"
                " SUMMITCAST_SECRET_KEY changed? Heartbeats of every location sealed under"
                " another key are refused until their links are re-issued (summit %s)",
                identity.summit_key,
            )

    async def sample(self, wall_now: float | None = None) -> int:
        """Store one presence sample per live summit at the current aligned tick."""
        interval = self.settings.presence_sample_interval_s
        moment = self._wall() if wall_now is None else wall_now
        tick = datetime.fromtimestamp(math.floor(moment / interval) * interval, UTC)
        snapshots: list[tuple[int, PresenceSnapshot]] = []
        for summit_key in sorted(self._summits):
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
            await asyncio.to_thread(self._write_samples, tick, snapshots)
        return len(snapshots)

    def _write_samples(self, tick: datetime, snapshots: list[tuple[int, PresenceSnapshot]]) -> None:
        with self.database.session() as db:
            for summit_id, snapshot in snapshots:
                locations.record_sample(db, summit_id, tick, snapshot)

    async def _every(self, interval_s: float, step: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                result = step()
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except self.outage_errors as error:
                # Expected while Redis or the database restarts: one line, no traceback.
                self.outages.failed(getattr(step, "__name__", "presence task"), error)
            except Exception:
                # A database or Redis hiccup must not end the loop: the next tick retries.
                log.exception("presence task %s failed; retrying", getattr(step, "__name__", step))
            self.outages.settle()

    async def _follow_changes(self) -> None:
        while True:
            try:
                async with self.pubsub.subscribe(CHANGES_CHANNEL) as subscription:
                    async for message in subscription:
                        await self._changed_elsewhere(message)
                return
            except asyncio.CancelledError:
                raise
            except self.outage_errors as error:
                self.outages.failed("location changes", error)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("following location changes failed; retrying")
                await asyncio.sleep(1.0)

    async def start(self) -> None:
        """Start the background tasks: sweep, publish, flush, sample, follow changes."""
        await self.refresh_summits()
        s = self.settings
        steps: list[tuple[float, Callable[[], object]]] = [
            (s.presence_sweep_interval_s, self.sweep),
            (0.25, self.publish_dirty),
            (1.0, self.flush_transitions),
            (s.presence_sample_interval_s, self._refresh_and_sample),
        ]
        self._tasks = [asyncio.create_task(self._every(i, step)) for i, step in steps]
        self._tasks.append(asyncio.create_task(self._follow_changes()))

    async def _refresh_and_sample(self) -> None:
        await self.refresh_summits()
        await self.sample()

    async def stop(self) -> None:
        """Stop the background tasks, write what is buffered and close the back-ends."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush_transitions()
        await self.pubsub.close()
        await self.presence.close()


def _listed(location: Location, at: datetime | None) -> Message:
    """One line of the dashboard's arrivals or drops (organisers only: the label is shown)."""
    return {
        "label": location.label,
        "country": location.country,
        "at": at.isoformat() if at is not None else None,
    }
