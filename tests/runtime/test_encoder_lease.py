"""EncoderLease: first come is primary, a backup takes over when it stops, a returner is backup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from summitcast.runtime.encoder_lease import EncoderLease, holder_id
from summitcast.storage.leases import InMemoryLeases

pytestmark = pytest.mark.unit

T0 = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)


class Clocks:
    """A monotonic and a wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return self.elapsed

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.elapsed)


def _lease(leases: InMemoryLeases, clocks: Clocks, name: str) -> EncoderLease:
    return EncoderLease(
        leases, holder_id(name, f"node-{name}"), 6.0, monotonic=clocks.monotonic, wall=clocks.wall
    )


def test_holder_names_one_process_of_one_node() -> None:
    first, second = holder_id("a", "node-a"), holder_id("a", "node-a")

    assert first.startswith("a/node-a/")
    assert first != second  # a restarted node is a new holder


def test_first_node_is_primary_and_the_other_backup() -> None:
    leases, clocks = InMemoryLeases(), Clocks()
    a, b = _lease(leases, clocks, "a"), _lease(leases, clocks, "b")

    assert asyncio.run(a.renew()) is True
    assert asyncio.run(b.renew()) is False
    assert (a.role, b.role) == ("primary", "backup")


def test_backup_takes_over_within_the_lease_after_the_primary_stops_renewing() -> None:
    leases, clocks = InMemoryLeases(), Clocks()
    a, b = _lease(leases, clocks, "a"), _lease(leases, clocks, "b")
    asyncio.run(a.renew())
    asyncio.run(b.renew())

    # a dies right after its renewal; b looks every period (2 s) as its task would.
    took_over_at = None
    while took_over_at is None and clocks.elapsed < 20:
        clocks.elapsed += b.period_s
        if asyncio.run(b.renew()):
            took_over_at = clocks.elapsed

    assert took_over_at is not None
    assert took_over_at <= 6.0
    assert not a.primary  # a's own view ran out no later than the database's
    assert b.role == "primary"


def test_a_node_that_comes_back_joins_as_backup() -> None:
    leases, clocks = InMemoryLeases(), Clocks()
    a, b = _lease(leases, clocks, "a"), _lease(leases, clocks, "b")
    asyncio.run(a.renew())
    clocks.elapsed += 5
    asyncio.run(b.renew())

    again = _lease(leases, clocks, "a")

    assert asyncio.run(again.renew()) is False
    assert again.role == "backup"
    assert b.role == "primary"


def test_clean_stop_releases_the_lease_at_once() -> None:
    leases, clocks = InMemoryLeases(), Clocks()
    a, b = _lease(leases, clocks, "a"), _lease(leases, clocks, "b")

    async def scenario() -> bool:
        a.start()
        await asyncio.sleep(0.05)  # its first renewal runs at once
        await a.stop()
        return await b.renew()

    assert asyncio.run(scenario()) is True
    assert not a.primary
