"""The demo's simulated audience: hundreds of flagged locations coming and going via LiveService."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from summitcast.config import Settings
from summitcast.errors import ValidationError
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.services.demo import seed_demo, seed_demo_audience
from summitcast.services.demo_presence import AUDIENCE_PREFIX, DemoAudience, ensure_audience
from summitcast.services.live import LiveService
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import TEST_LINKS, TEST_SECRET_KEY, make_summit

pytestmark = pytest.mark.integration

START = 1_800_000_000.0  # a wall clock the simulation and LiveService share (2027-01-15)
# Slower beats than a screen's 10 s keep half an hour of simulated time quick to run.
INTERVAL = 30.0
TIMEOUT = 70.0


class Clock:
    """Wall clock of the heartbeats and of presence at once; moves only when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _demo(database: Database) -> Summit:
    with database.session() as db:
        made = seed_demo(db, start=date(2027, 1, 15))
        seed_demo_audience(db, made, TEST_LINKS)
        return made.summit


def _audience(database: Database, tmp_path: Path, clock: Clock) -> tuple[DemoAudience, list[str]]:
    settings = Settings(
        environment="test",
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        database_url=database.url,
        auto_migrate=False,
        heartbeat_interval_s=INTERVAL,
        heartbeat_timeout_s=TIMEOUT,
    )
    live = LiveService(
        settings=settings,
        database=database,
        presence=MemoryPresence(TIMEOUT, clock=clock),
        pubsub=MemoryPubSub(),
        wall_clock=clock,
    )
    counted: list[str] = []
    live.on_accepted = counted.append  # what the attendance recorder is handed
    return DemoAudience(live, rng=random.Random(7), clock=clock), counted


def _countries(by_country: dict[str, int]) -> set[str]:
    return {country for country, n in by_country.items() if n and country != "ZZ"}


def test_ensure_audience_makes_flagged_locations_in_many_countries_once(
    database: Database,
) -> None:
    summit = _demo(database)

    with database.session() as db:
        again = ensure_audience(db, db.get(Summit, summit.id), TEST_LINKS)  # type: ignore[arg-type]
        rows = db.execute(
            select(Location.country, Location.simulated, Location.status).where(
                Location.public_id.like(f"{AUDIENCE_PREFIX}%")
            )
        ).all()

    assert again == len(rows)
    assert 600 <= len(rows) <= 700
    assert {(simulated, status) for _, simulated, status in rows} == {(True, "approved")}
    assert len({country for country, _, _ in rows}) >= 50


def test_ensure_audience_refuses_a_summit_that_is_not_a_demo(database: Database) -> None:
    summit = make_summit(database)

    with database.session() as db, pytest.raises(ValidationError, match="demo summit"):
        ensure_audience(db, db.get(Summit, summit.id), TEST_LINKS)  # type: ignore[arg-type]
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Location)) == 0


def test_audience_brings_hundreds_online_in_many_countries_through_live_service(
    database: Database, tmp_path: Path
) -> None:
    summit = _demo(database)
    clock = Clock()
    audience, counted = _audience(database, tmp_path, clock)
    key = str(summit.id)

    async def scenario() -> tuple[Any, int, dict[str, int], dict[str, Any]]:
        await audience.load()
        step = await audience.step(clock.now)
        clock.now += 1
        live = audience.live
        figures = await live.organiser_figures(summit.id)
        return (
            step,
            await live.presence.online_count(key),
            await live.presence.counts_by_country(key),
            figures,
        )

    step, online, by_country, figures = asyncio.run(scenario())

    assert 200 <= online <= 400
    assert (step.joined, step.beats, step.refused, step.watching) == (online, online, 0, online)
    assert len(_countries(by_country)) >= 40
    assert figures["total"] == online  # what the organiser dashboard is pushed
    assert len(counted) == online  # every accepted beat reaches attendance counting


def test_audience_comes_and_goes_over_accelerated_time(database: Database, tmp_path: Path) -> None:
    summit = _demo(database)
    clock = Clock()
    audience, counted = _audience(database, tmp_path, clock)
    key = str(summit.id)
    minutes = 30

    async def scenario() -> tuple[list[int], set[str], set[str], int, int, int]:
        live = audience.live
        await audience.load()
        online_per_minute: list[int] = []
        first: set[str] = set()
        joined = left = departed = 0
        for second in range(0, minutes * 60, 10):
            clock.now = START + second
            step = await audience.step(clock.now)
            joined, left = joined + step.joined, left + step.left
            if second % 60 == 0:
                departed += len(await live.sweep(clock.now))
                online_per_minute.append(await live.presence.online_count(key))
                if second == 0:
                    first = set(await _online_ids(live, key))
        last = set(await _online_ids(live, key))
        return online_per_minute, first, last, joined, left, departed

    per_minute, first, last, joined, left, departed = asyncio.run(scenario())

    assert all(150 <= n <= 450 for n in per_minute), per_minute
    assert max(per_minute) - min(per_minute) >= 30, per_minute  # it varies
    # People left and others came: after half an hour most of the first audience is gone.
    assert len(first & last) < 0.6 * len(first)
    assert (left >= 100, joined - len(first) >= 100, departed >= 100) == (True, True, True)
    assert len(set(counted)) > len(first)  # arrivals beat and were counted too


async def _online_ids(live: LiveService, key: str) -> list[str]:
    online = []
    with live.database.session() as db:
        ids = db.scalars(
            select(Location.public_id).where(Location.public_id.like(f"{AUDIENCE_PREFIX}%"))
        ).all()
    for public_id in ids:
        if await live.presence.is_online(key, public_id):
            online.append(public_id)
    return online


def test_audience_beats_only_its_own_locations_of_demo_summits(
    database: Database, tmp_path: Path
) -> None:
    demo = _demo(database)
    real = make_summit(database, slug="a-real-summit")
    with database.session() as db:
        for summit_id, public_id in (
            (real.id, f"{AUDIENCE_PREFIX}9999"),  # a copy gone wrong, in a real summit
            (demo.id, "demo-loc-000001"),  # the demo's past attendance: never beats
        ):
            db.add(
                Location(
                    summit_id=summit_id, public_id=public_id, label="x", country="DE",
                    kind="home", privacy_level="public", status="approved",
                    sealed_secret=TEST_LINKS.seal(public_id, "s" * 43), simulated=True,
                )
            )  # fmt: skip
    clock = Clock()
    audience, counted = _audience(database, tmp_path, clock)

    async def scenario() -> tuple[int, int]:
        loaded = await audience.load()
        await audience.step(clock.now)
        return loaded, await audience.live.presence.online_count(str(real.id))

    loaded, real_online = asyncio.run(scenario())

    with database.session() as db:
        pool = db.scalar(
            select(func.count())
            .select_from(Location)
            .where(Location.summit_id == demo.id, Location.public_id.like(f"{AUDIENCE_PREFIX}%"))
        )
    assert (loaded, real_online) == (pool, 0)
    assert list(audience.pools) == [str(demo.id)]
    assert "demo-loc-000001" not in counted
