"""Which of the redundant encoders is the primary: the holder of the "broadcast" lease.

Both broadcast nodes run every session's playout (they line up on the session's
clock, ``summitcast.media.feed_clock.SessionClock``); the lease only decides who
writes what must be written once: the recordings of an ended session, and the
"primary" in the control room's health view. Each node tries to take or renew the
lease every third of ``encoder_lease_s``; a renewal holds it for two thirds (two
periods: one renewal may fail or come late without losing it). So a primary that
dies (stops renewing) is replaced at most ``encoder_lease_s`` after its last
renewal (expiry, plus at most one period until the backup looks), and a node that
comes back finds the lease held and stays backup. The holder names one process
(encoder name, node, a random token): a restarted node is a new holder, not the
old primary.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from summitcast.runtime.periodic import Backoff, Periodic
from summitcast.storage.leases import Leases

logger = logging.getLogger(__name__)

LEASE_NAME = "broadcast"


def holder_id(encoder_name: str, node_name: str) -> str:
    """A holder name unique to this process: encoder, node and a random token."""
    # At most 8 + 1 + 60 + 1 + 8 characters: the column holds 100.
    return f"{encoder_name}/{node_name[:60] or '-'}/{secrets.token_hex(4)}"


class EncoderLease:
    """Keeps trying to hold the lease; knows whether this node is the primary right now."""

    def __init__(
        self,
        leases: Leases,
        holder: str,
        ttl_s: float,
        *,
        name: str = LEASE_NAME,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.ttl_s = ttl_s
        self.name = name
        self._monotonic = monotonic
        self._wall = wall
        self.period_s = ttl_s / 3
        self.hold_s = 2 * self.period_s  # how long one renewal holds the lease
        # Until when (monotonic) this node surely holds the lease: measured from before
        # the renewal was sent, so a slow database never makes it look held for longer.
        self._held_until = 0.0
        self.task = Periodic(
            f"encoder lease {name}",
            self.renew,
            self.period_s,
            backoff=Backoff(first_s=self.period_s, cap_s=self.period_s),
            immediately=True,
            # The database unreachable: one line a period, not a traceback.
            expected=(SQLAlchemyError, OSError),
            logger=logger,
        )

    @property
    def primary(self) -> bool:
        """Whether this node holds the lease now."""
        return self._monotonic() < self._held_until

    @property
    def role(self) -> str:
        """What the health view calls this node: primary or backup."""
        return "primary" if self.primary else "backup"

    async def renew(self) -> bool:
        """Take or renew the lease once; True if held."""
        asked = self._monotonic()
        now = self._wall()
        was = self.primary
        # A failure (database unreachable) raises: the lease then runs out by itself.
        held = await asyncio.to_thread(
            self.leases.acquire, self.name, self.holder, self.hold_s, now
        )
        self._held_until = asked + self.hold_s if held else 0.0
        if held != was:
            logger.info("encoder %s is now %s", self.holder, "primary" if held else "backup")
        return held

    def start(self) -> None:
        """Renew in the background, every third of the lease."""
        self.task.start()

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; release=True hands the lease over at once (a clean shutdown)."""
        await self.task.stop()
        if release and self.primary:
            self._held_until = 0.0
            await asyncio.to_thread(self.leases.release, self.name, self.holder)
