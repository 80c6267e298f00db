"""The heartbeat path's identities: a per-worker cache of locations, and the verifier."""

from __future__ import annotations

import asyncio
import logging
import time

from summitcast.domain.locations import LocationStatus
from summitcast.domain.presence import Heartbeat, verify_heartbeat
from summitcast.domain.presence_wire import Reason
from summitcast.services import locations
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.locations import PresenceIdentity
from summitcast.storage.database import Database

log = logging.getLogger(__name__)

# A cached identity is re-read after this long even if no change message arrived
# (a message lost while Redis restarts must not keep a revoked location counted);
# every sampling tick also reloads all identities of live summits in one query.
IDENTITY_TTL_S = 120.0
IDENTITY_PAGE = 1000  # identities read per query when all are refreshed
IDENTITY_PAGE_PAUSE_S = 0.05  # the event loop's own time between two pages
MAX_CACHED = 200_000  # past this the cache starts again (a flood of forged ids)


def verify(
    heartbeat: Heartbeat, identity: PresenceIdentity, now: float, skew_s: float
) -> Reason | None:
    """Why a parsed heartbeat of a known location is refused, or None when it may count."""
    # Replay is checked by the back-end (shared by all workers), hence None here.
    verdict = verify_heartbeat(heartbeat, identity.secret, now, None, skew_s)
    if verdict.refusal is not None:
        return Reason(verdict.refusal.value)
    # The signature is checked before the status: only the secret's holder learns it.
    if identity.status != LocationStatus.APPROVED:
        return Reason.PENDING if identity.status == LocationStatus.PENDING else Reason.REVOKED
    if identity.simulated_outside_demo:
        # Simulated traffic never counts towards a real summit: not online, not attended.
        return Reason.SIMULATED
    return None


class IdentityCache:
    """What each location's heartbeats are checked against, read from the database once."""

    def __init__(self, database: Database, links: LinkSecrets) -> None:
        self.database = database
        # Opens the sealed link secrets of locations when identities are (re)read.
        self.links = links
        # Identity and when it was last read apart: a refresh that finds a location
        # unchanged only stores a float (not tracked by the garbage collector), so the
        # 30,000 cached identities are not re-made every tick and rescanned by every full
        # collection (a full collection over a worker's heap paused it for seconds).
        self._identities: dict[str, PresenceIdentity | None] = {}
        self._read_at: dict[str, float] = {}
        self._forgotten_during_refresh: set[str] | None = None
        self._unopenable_logged = False

    @property
    def entries(self) -> dict[str, PresenceIdentity | None]:
        """The cached identities by location id (None: no such location)."""
        return self._identities

    def cached(self, location_id: str) -> PresenceIdentity | None:
        """The identity this worker has read of a location, without reading it."""
        return self._identities.get(location_id)

    async def get(self, location_id: str) -> PresenceIdentity | None:
        """A location's identity: from the cache while fresh, else read from the database."""
        now = time.monotonic()
        if now - self._read_at.get(location_id, -IDENTITY_TTL_S) < IDENTITY_TTL_S:
            return self._identities.get(location_id)
        identity = await asyncio.to_thread(self._load, location_id)
        # Unknown ids are cached too, so a flood of one forged id does not reach the database.
        if len(self._identities) > MAX_CACHED:
            self._identities.clear()
            self._read_at.clear()
        self._remember(location_id, identity, now)
        return identity

    def forget(self, location_id: str) -> None:
        """Drop a cached identity so that the next heartbeat reads the database."""
        self._identities.pop(location_id, None)
        self._read_at.pop(location_id, None)
        if self._forgotten_during_refresh is not None:
            self._forgotten_during_refresh.add(location_id)

    def _remember(self, location_id: str, identity: PresenceIdentity | None, now: float) -> None:
        # Keep the cached object when nothing changed (see _read_at).
        if location_id not in self._identities or self._identities[location_id] != identity:
            self._identities[location_id] = identity
        self._read_at[location_id] = now

    def _load(self, location_id: str) -> PresenceIdentity | None:
        with self.database.session() as db:
            return locations.load_identity(db, location_id, self.links, self._identities)

    async def refresh(self, live_summits: set[str]) -> None:
        """Re-read every identity of the live summits; add those with approved ones to the set."""
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
                if identity.status == LocationStatus.APPROVED:
                    live_summits.add(identity.summit_key)
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
