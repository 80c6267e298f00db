"""The demo's simulated audience: a few hundred watch locations that come and go.

Each simulated location is a row flagged ``simulated`` in a summit marked ``is_demo``
and beats like a location screen: a signed ``hb1`` token every ~10 s through the real
``LiveService.heartbeat``, so presence, the map cells, the organiser's arrivals and
drops, the samples of the report and the attendance counts all move as they would
for real screens. The heartbeat path refuses a simulated location of any other summit
(``PresenceIdentity.simulated_outside_demo``), and attendance counting skips it too.

How many are online follows a slow wave between about a third and two thirds of the
pool (200-400 of 640); each joins with a fresh epoch, stays 3-40 minutes and goes
silent, and the presence timeout takes it offline as it would a closed laptop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.presence import encode_heartbeat, next_interval, sign_heartbeat
from summitcast.errors import ValidationError
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.live import LiveService
from summitcast.services.locations import KINDS
from summitcast.storage.tables import Location, Summit

log = logging.getLogger(__name__)

AUDIENCE_PREFIX = "demo-live-"
AUDIENCE_SIZE = 640
AUDIENCE_SEED = 20261207
RELOAD_S = 300.0  # the pool is read again this often (a location revoked meanwhile)

# (country, weight, cities as (name, lat, lon)): many countries, a few large ones; the
# smallest fall under k in the public view, as small countries do at a real summit.
COUNTRIES: tuple[tuple[str, int, tuple[tuple[str, float, float], ...]], ...] = (
    ("US", 30, (("New York", 40.71, -74.01), ("Chicago", 41.88, -87.63))),
    ("IN", 26, (("Mumbai", 19.08, 72.88), ("Bengaluru", 12.97, 77.59))),
    ("BR", 24, (("São Paulo", -23.55, -46.63), ("Recife", -8.05, -34.88))),
    ("NG", 20, (("Lagos", 6.52, 3.38), ("Abuja", 9.08, 7.4))),
    ("DE", 18, (("Berlin", 52.52, 13.4), ("Munich", 48.14, 11.58))),
    ("FR", 14, (("Paris", 48.86, 2.35), ("Lyon", 45.76, 4.84))),
    ("MX", 14, (("Mexico City", 19.43, -99.13),)),
    ("KE", 14, (("Nairobi", -1.29, 36.82),)),
    ("ID", 12, (("Jakarta", -6.21, 106.85),)),
    ("PH", 12, (("Manila", 14.6, 120.98),)),
    ("GB", 12, (("London", 51.51, -0.13),)),
    ("ZA", 12, (("Johannesburg", -26.2, 28.05),)),
    ("JP", 10, (("Tokyo", 35.68, 139.69),)),
    ("AR", 10, (("Buenos Aires", -34.6, -58.38),)),
    ("CA", 10, (("Toronto", 43.65, -79.38),)),
    ("EG", 10, (("Cairo", 30.04, 31.24),)),
    ("GH", 10, (("Accra", 5.6, -0.19),)),
    ("IT", 10, (("Rome", 41.9, 12.5),)),
    ("ES", 10, (("Madrid", 40.42, -3.7),)),
    ("CO", 10, (("Bogotá", 4.71, -74.07),)),
    ("ET", 10, (("Addis Ababa", 9.03, 38.74),)),
    ("PK", 10, (("Lahore", 31.55, 74.34),)),
    ("BD", 10, (("Dhaka", 23.81, 90.41),)),
    ("AU", 8, (("Sydney", -33.87, 151.21),)),
    ("TR", 8, (("Istanbul", 41.01, 28.98),)),
    ("PL", 8, (("Warsaw", 52.23, 21.01),)),
    ("CL", 8, (("Santiago", -33.45, -70.67),)),
    ("PE", 8, (("Lima", -12.05, -77.04),)),
    ("UA", 8, (("Kyiv", 50.45, 30.52),)),
    ("KR", 8, (("Seoul", 37.57, 126.98),)),
    ("TZ", 8, (("Dar es Salaam", -6.79, 39.21),)),
    ("UG", 8, (("Kampala", 0.35, 32.58),)),
    ("SN", 8, (("Dakar", 14.72, -17.47),)),
    ("MA", 8, (("Casablanca", 33.57, -7.59),)),
    ("VN", 8, (("Hanoi", 21.03, 105.85),)),
    ("TH", 8, (("Bangkok", 13.76, 100.5),)),
    ("JO", 6, (("Amman", 31.95, 35.93),)),
    ("MY", 6, (("Kuala Lumpur", 3.14, 101.69),)),
    ("TW", 6, (("Taipei", 25.03, 121.57),)),
    ("NZ", 6, (("Auckland", -36.85, 174.76),)),
    ("PT", 6, (("Lisbon", 38.72, -9.14),)),
    ("NL", 6, (("Amsterdam", 52.37, 4.9),)),
    ("IE", 6, (("Dublin", 53.35, -6.26),)),
    ("RO", 6, (("Bucharest", 44.43, 26.1),)),
    ("GR", 6, (("Athens", 37.98, 23.73),)),
    ("ZM", 6, (("Lusaka", -15.39, 28.32),)),
    ("RW", 6, (("Kigali", -1.95, 30.06),)),
    ("EC", 6, (("Quito", -0.18, -78.47),)),
    ("NP", 6, (("Kathmandu", 27.72, 85.32),)),
    ("LK", 6, (("Colombo", 6.93, 79.86),)),
    ("NO", 4, (("Oslo", 59.91, 10.75),)),
    ("FJ", 2, (("Suva", -18.14, 178.44),)),
    ("IS", 2, (("Reykjavík", 64.15, -21.94),)),
)


def ensure_audience(
    db: DbSession,
    summit: Summit,
    links: LinkSecrets,
    *,
    size: int = AUDIENCE_SIZE,
    seed: int = AUDIENCE_SEED,
) -> int:
    """Give a demo summit its simulated, approved watch locations once; returns how many it has."""
    if not summit.is_demo:
        raise ValidationError("Only a demo summit gets a simulated audience.", field="summit")
    existing = db.scalar(
        select(func.count())
        .select_from(Location)
        .where(Location.summit_id == summit.id, Location.public_id.like(f"{AUDIENCE_PREFIX}%"))
    )
    if existing:
        return int(existing)
    rng = random.Random(seed)  # noqa: S311 - a reproducible audience, not secrets
    total = sum(weight for _, weight, _ in COUNTRIES)
    kinds = list(KINDS)
    rows: list[dict[str, object]] = []
    for country, weight, cities in COUNTRIES:
        # Shares, not draws: every country of the list has its locations.
        for _ in range(max(1, round(size * weight / total))):
            name, lat, lon = cities[0] if rng.random() < 0.7 else rng.choice(cities)
            roll = rng.random()
            privacy = "hidden" if roll < 0.04 else "country" if roll < 0.12 else "public"
            public = privacy == "public"
            kind = rng.choice(kinds)
            public_id = f"{AUDIENCE_PREFIX}{len(rows):04d}"
            rows.append(
                {
                    "summit_id": summit.id,
                    "public_id": public_id,
                    "label": f"{KINDS[kind]} in {name} (simulated)",
                    "country": country,
                    "city": name if public else "",
                    "lat": lat if public else None,
                    "lon": lon if public else None,
                    "kind": kind,
                    "expected_audience": rng.randint(2, 80),
                    "contact": "",
                    "privacy_level": privacy,
                    "status": "approved",
                    "sealed_secret": links.new(public_id)[1],
                    "simulated": True,
                }
            )
    db.execute(insert(Location), rows)
    db.flush()
    return len(rows)


@dataclass(slots=True)
class _Screen:
    """One simulated location screen: its secret and, while it watches, its heartbeat state."""

    summit_key: str
    public_id: str
    secret: bytes
    watching: bool = False
    epoch: str = ""
    seq: int = 0
    next_beat: float = 0.0
    leaves_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Step:
    """What one step of the simulation did."""

    joined: int
    left: int
    beats: int
    refused: int
    watching: int


@dataclass(slots=True)
class _Pool:
    screens: list[_Screen] = field(default_factory=list)
    filled: bool = False  # the first step fills up to the target at once


def _load_screens(db: DbSession, links: LinkSecrets) -> dict[str, list[_Screen]]:
    """The approved simulated audience of every demo summit, by summit key."""
    query = (
        select(Location.summit_id, Location.public_id, Location.sealed_secret)
        .join(Summit, Summit.id == Location.summit_id)
        # Only the audience: the demo's other simulated rows (its past attendance) stay silent.
        .where(Summit.is_demo, Location.simulated, Location.status == "approved")
        .where(Location.public_id.like(f"{AUDIENCE_PREFIX}%"))
        .order_by(Location.id)
    )
    pools: dict[str, list[_Screen]] = {}
    for summit_id, public_id, sealed in db.execute(query):
        secret = links.open_sealed(public_id, sealed)
        if not secret:
            continue  # sealed under another app key: it could only be refused
        key = str(summit_id)
        pools.setdefault(key, []).append(_Screen(key, public_id, secret.encode()))
    return pools


class DemoAudience:
    """Simulated screens of every demo summit, beating through LiveService like real ones."""

    def __init__(
        self,
        live: LiveService,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        stay_s: tuple[float, float] = (180.0, 2400.0),
    ) -> None:
        self.live = live
        self._rng = rng or random.Random()  # noqa: S311 - a simulation, not secrets
        # Wall-clock seconds: heartbeat tokens carry the client's unix time.
        self._clock = clock
        self.tick_s = tick_s
        self.stay_s = stay_s
        self.pools: dict[str, _Pool] = {}
        self._loaded_at: float | None = None

    async def load(self) -> int:
        """Read the simulated locations of demo summits; screens already watching keep on."""
        found = await asyncio.to_thread(self._read)
        pools: dict[str, _Pool] = {}
        for key, screens in found.items():
            old = {s.public_id: s for s in self.pools.get(key, _Pool()).screens}
            kept = [old.get(s.public_id, s) for s in screens]
            pools[key] = _Pool(kept, filled=key in self.pools and self.pools[key].filled)
        self.pools = pools
        self._loaded_at = self._clock()
        return sum(len(p.screens) for p in pools.values())

    def _read(self) -> dict[str, list[_Screen]]:
        with self.live.database.session() as db:
            return _load_screens(db, self.live.links)

    def target(self, pool_size: int, now: float) -> int:
        """How many screens of a pool should be watching at now: a slow, uneven wave."""
        # Periods of 20 and ~5 minutes: the figures move visibly within minutes and
        # never repeat exactly; between about 31% and 63% of the pool.
        share = (
            0.47
            + 0.11 * math.sin(2 * math.pi * now / 1200)
            + 0.05 * math.sin(2 * math.pi * now / 310)
        )
        return round(pool_size * share)

    def _stay(self) -> float:
        low, high = self.stay_s
        # Most stay a while, a few the whole afternoon (an exponential tail, capped).
        return min(high, low + self._rng.expovariate(3.0 / (high - low)))

    def _join(self, screen: _Screen, now: float, *, first: bool) -> None:
        screen.watching = True
        screen.epoch = f"{self._rng.getrandbits(64):016x}"  # a new page load
        screen.seq = 0
        screen.next_beat = now
        stay = self._stay()
        # The first audience joined at various times before now: they leave spread out.
        screen.leaves_at = now + (stay * self._rng.random() if first else stay)

    async def step(self, now: float) -> Step:
        """Let screens leave and join towards the target, and beat those whose beat is due."""
        joined = left = 0
        due: list[_Screen] = []
        interval = self.live.settings.heartbeat_interval_s
        for pool in self.pools.values():
            for screen in [s for s in pool.screens if s.watching]:
                if screen.leaves_at <= now:
                    screen.watching = False  # silent: presence times it out
                    left += 1
            count = sum(1 for s in pool.screens if s.watching)
            wanted = self.target(len(pool.screens), now) - count
            if not pool.filled:
                joins = max(0, wanted)
            else:
                # Arrivals trickle in, a few a second, as people open their screens.
                joins = min(max(0, wanted), max(1, len(pool.screens) // 100))
            idle = [s for s in pool.screens if not s.watching]
            for screen in self._rng.sample(idle, min(joins, len(idle))):
                self._join(screen, now, first=not pool.filled)
                joined += 1
            pool.filled = True
            due += [s for s in pool.screens if s.watching and s.next_beat <= now]
        outcomes = await asyncio.gather(*(self._beat(s, now, interval) for s in due))
        refused = sum(1 for ok in outcomes if not ok)
        watching = sum(1 for p in self.pools.values() for s in p.screens if s.watching)
        return Step(joined, left, len(due), refused, watching)

    async def _beat(self, screen: _Screen, now: float, interval: float) -> bool:
        token = sign_heartbeat(screen.secret, screen.public_id, screen.epoch, screen.seq, int(now))
        screen.seq += 1
        screen.next_beat = now + next_interval(interval, self._rng)
        outcome = await self.live.heartbeat(encode_heartbeat(token))
        if not outcome.ok:
            # Revoked by an organiser, or a summit no longer a demo: this one stops.
            screen.watching = False
            log.debug("simulated location %s refused: %s", screen.public_id, outcome.reason)
        return outcome.ok

    async def tick(self) -> Step:
        """One tick of the simulation: read the pool again when due, then step at now."""
        # Run every tick_s by runtime/presence_tasks.py, which logs an outage as one line.
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= RELOAD_S:
            await self.load()
        return await self.step(now)
