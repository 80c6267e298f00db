"""Live presence: the heartbeat verify path, expiry, samples, k-anonymous figures and fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from summitcast.config import Settings
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.presence.base import Presence, PubSub
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.presence.names import presence_channel
from summitcast.services import locations
from summitcast.services.live import LiveService, OutageLog, Outcome, Reason
from summitcast.services.live import identities as identities_module
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, PresenceSample, Summit
from tests.conftest import TEST_LINKS, TEST_SECRET_KEY, make_summit
from tests.presence.conftest import _redis_backend
from tests.services.backends import Flaky

pytestmark = pytest.mark.integration

WALL = 1_800_000_000.0  # the wall clock the tests pretend it is (2027-01-15)
TIMEOUT = 35.0


class FakeClock:
    """A presence clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    """One summit, its live service and handles to make heartbeats."""

    database: Database
    live: LiveService
    summit: Summit
    clock: FakeClock
    epochs: dict[str, int] = field(default_factory=dict)

    def register(self, *, approve: bool = True, **fields: Any) -> Location:
        """A location of the summit, approved unless told otherwise."""
        values: dict[str, Any] = {"label": "Hall", "country": "FR", "city": "Paris"}
        values.update(fields)
        with self.database.session() as db:
            summit = db.get(Summit, self.summit.id)
            assert summit is not None
            location = locations.register_location(
                db, summit, LocationInput(**values), at_risk=frozenset(), links=TEST_LINKS
            )
            if approve:
                locations.approve_location(db, location)
            return location

    def token(self, location: Location, *, seq: int | None = None, secret: str = "") -> str:
        """A signed heartbeat token with the next sequence number."""
        number = self.epochs.get(location.public_id, 0) if seq is None else seq
        self.epochs[location.public_id] = number + 1
        heartbeat = sign_heartbeat(
            (secret or TEST_LINKS.open(location)).encode(),
            location.public_id,
            "epoch-one",
            number,
            int(WALL),
        )
        return encode_heartbeat(heartbeat)

    async def online(self) -> int:
        """How many locations of the summit are online now."""
        return await self.live.presence.online_count(str(self.summit.id))


def _settings(tmp_path: Path, database: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": TEST_SECRET_KEY,
        "data_dir": tmp_path / "data",
        "database_url": database.url,
        "auto_migrate": False,
        "heartbeat_timeout_s": TIMEOUT,
        "live_push_interval_s": 0.5,
        "k_anonymity": 5,
    }
    values.update(overrides)
    return Settings(**values)


def _env(
    database: Database,
    tmp_path: Path,
    presence: Presence | None = None,
    pubsub: PubSub | None = None,
    **overrides: Any,
) -> Env:
    clock = FakeClock()
    live = LiveService(
        settings=_settings(tmp_path, database, **overrides),
        database=database,
        presence=presence or MemoryPresence(TIMEOUT, clock=clock),
        pubsub=pubsub or MemoryPubSub(),
        wall_clock=lambda: WALL,
    )
    return Env(database, live, make_summit(database), clock)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run one async scenario on a fresh event loop."""
    return asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.fixture
def env(database: Database, tmp_path: Path) -> Env:
    """The in-process back-ends with an injected clock."""
    return _env(database, tmp_path)


@pytest.fixture(params=["memory", "redis"])
def any_env(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> Iterator[Env]:
    """Each presence back-end in turn (Redis under a random prefix, removed afterwards)."""
    if request.param == "memory":
        yield _env(database, tmp_path)
        return
    for backend in _redis_backend():
        yield _env(database, tmp_path, backend.presence(), backend.pubsub())


def test_heartbeat_valid_counts_location(any_env: Env) -> None:
    location = any_env.register()

    async def scenario() -> tuple[Any, int]:
        try:
            outcome = await any_env.live.heartbeat(any_env.token(location))
            return outcome, await any_env.online()
        finally:
            await any_env.live.stop()

    outcome, online = run(scenario)

    assert (outcome.ok, outcome.location_id, online) == (True, location.public_id, 1)


def test_heartbeat_forged_signature_is_refused_and_not_counted(any_env: Env) -> None:
    location = any_env.register()

    async def scenario() -> tuple[Any, int]:
        try:
            forged = any_env.token(location, secret="a-guess-at-the-secret")
            return await any_env.live.heartbeat(forged), await any_env.online()
        finally:
            await any_env.live.stop()

    outcome, online = run(scenario)

    assert (outcome.reason, online) == (Reason.BAD_SIGNATURE, 0)


def test_heartbeat_replayed_is_refused_and_not_counted(any_env: Env) -> None:
    location = any_env.register()
    token = any_env.token(location)

    async def scenario() -> tuple[Any, Any, int]:
        try:
            first = await any_env.live.heartbeat(token)
            await any_env.live.presence.forget(str(any_env.summit.id), location.public_id)
            replayed = await any_env.live.heartbeat(token)
            return first, replayed, await any_env.online()
        finally:
            await any_env.live.stop()

    first, replayed, online = run(scenario)

    assert (first.ok, replayed.reason, online) == (True, Reason.REPLAY, 0)


@pytest.mark.parametrize(("revoke", "reason"), [(False, Reason.PENDING), (True, Reason.REVOKED)])
def test_heartbeat_of_unapproved_location_is_refused_and_not_counted(
    any_env: Env, revoke: bool, reason: Reason
) -> None:
    location = any_env.register(approve=False)
    if revoke:
        with any_env.database.session() as db:
            locations.revoke_location(db, db.get(Location, location.id))  # type: ignore[arg-type]

    async def scenario() -> tuple[Any, int]:
        try:
            return await any_env.live.heartbeat(any_env.token(location)), await any_env.online()
        finally:
            await any_env.live.stop()

    outcome, online = run(scenario)

    assert (outcome.reason, online) == (reason, 0)


def test_revoking_online_location_takes_it_offline_and_refuses_it(env: Env) -> None:
    location = env.register()

    async def scenario() -> tuple[int, Any, int]:
        await env.live.heartbeat(env.token(location))
        before = await env.online()
        with env.database.session() as db:
            locations.revoke_location(db, db.get(Location, location.id))  # type: ignore[arg-type]
        await env.live.location_changed(env.summit.id, location.public_id, offline=True)
        after = await env.live.heartbeat(env.token(location))
        return before, after, await env.online()

    before, after, online = run(scenario)

    assert (before, after.reason, online) == (1, Reason.REVOKED, 0)


def test_approval_reaches_a_cached_pending_location_at_once(env: Env) -> None:
    location = env.register(approve=False)

    async def scenario() -> tuple[Any, Any]:
        pending = await env.live.heartbeat(env.token(location))
        with env.database.session() as db:
            locations.approve_location(db, db.get(Location, location.id))  # type: ignore[arg-type]
        await env.live.location_changed(env.summit.id, location.public_id, offline=False)
        return pending, await env.live.heartbeat(env.token(location))

    pending, approved = run(scenario)

    assert (pending.reason, approved.ok) == (Reason.PENDING, True)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", Reason.MALFORMED),
        ("hb1.nope", Reason.MALFORMED),
        ("hb1.unknownid.epoch-one.0.1800000000." + "A" * 43, Reason.UNKNOWN),
    ],
)
def test_heartbeat_malformed_or_unknown_is_refused(env: Env, token: str, reason: Reason) -> None:
    outcome = run(lambda: env.live.heartbeat(token))

    assert outcome.reason == reason


def test_heartbeat_with_stale_timestamp_is_refused(env: Env) -> None:
    location = env.register()
    old = sign_heartbeat(
        TEST_LINKS.open(location).encode(), location.public_id, "epoch-one", 0, int(WALL) - 301
    )

    outcome = run(lambda: env.live.heartbeat(encode_heartbeat(old)))

    assert outcome.reason == Reason.STALE


def test_heartbeat_message_other_location_on_bound_socket_is_refused(env: Env) -> None:
    first, second = env.register(), env.register()

    async def scenario() -> Any:
        message = f'{{"type": "hb", "token": "{env.token(second)}"}}'
        return await env.live.heartbeat_message(message, bound_to=first.public_id)

    assert run(scenario).reason == Reason.WRONG_LOCATION


def test_location_expires_after_timeout_never_sooner(env: Env) -> None:
    location = env.register()

    async def scenario() -> tuple[list[str], int, list[str], int]:
        await env.live.heartbeat(env.token(location))
        start = env.clock.now
        early = await env.live.sweep(now=start + TIMEOUT - 0.001)
        online_early = await env.live.presence.online_count(
            str(env.summit.id), start + TIMEOUT - 0.001
        )
        late = await env.live.sweep(now=start + TIMEOUT)
        return (
            early,
            online_early,
            late,
            await env.live.presence.online_count(str(env.summit.id), start + TIMEOUT),
        )

    early, online_early, late, online_late = run(scenario)

    assert (early, online_early) == ([], 1)
    assert (late, online_late) == ([location.public_id], 0)


def test_reconnect_with_new_epoch_does_not_double_count(env: Env) -> None:
    location = env.register()

    async def scenario() -> int:
        secret = TEST_LINKS.open(location).encode()
        for epoch in ("epoch-one", "epoch-two", "epoch-three"):
            hb = sign_heartbeat(secret, location.public_id, epoch, 0, int(WALL))
            assert (await env.live.heartbeat(encode_heartbeat(hb))).ok
        return await env.online()

    assert run(scenario) == 1


def test_arrivals_and_drops_are_written_in_batches(env: Env) -> None:
    location = env.register(label="Lagos hall", country="NG", city="Lagos")

    async def scenario() -> tuple[int, int]:
        await env.live.heartbeat(env.token(location))
        arrived = await env.live.flush_transitions()
        await env.live.sweep(now=env.clock.now + TIMEOUT)
        dropped = await env.live.flush_transitions()
        return arrived, dropped

    assert run(scenario) == (1, 1)
    with env.database.session() as db:
        summit = db.get(Summit, env.summit.id)
        assert summit is not None
        arrivals = [loc.label for loc in locations.newest_arrivals(db, summit)]
        drops = [loc.label for loc in locations.recent_drops(db, summit)]
    assert (arrivals, drops) == (["Lagos hall"], ["Lagos hall"])


def test_sample_by_two_workers_writes_one_row_per_tick(database: Database, tmp_path: Path) -> None:
    shared = MemoryPresence(TIMEOUT)
    first = _env(database, tmp_path, shared, MemoryPubSub(), presence_sample_interval_s=60)
    second = LiveService(
        settings=first.live.settings,
        database=database,
        presence=shared,
        pubsub=MemoryPubSub(),
        wall_clock=lambda: WALL,
    )
    location = first.register(privacy_level="hidden")

    async def scenario() -> tuple[int, int]:
        await first.live.heartbeat(first.token(location))
        await second.refresh_summits()  # the second worker learns the summit from the database
        return await first.live.sample(WALL + 5), await second.sample(WALL + 30)

    a, b = run(scenario)

    assert (a, b) == (1, 1)
    with database.session() as db:
        rows = [
            (r.sampled_at.timestamp(), r.online_total, r.by_country)
            for r in db.query(PresenceSample)
        ]
    assert rows == [(WALL - WALL % 60, 1, {"ZZ": 1})]


def test_public_figures_are_k_anonymous(env: Env) -> None:
    paris = [env.register(city="Paris") for _ in range(5)]
    lyon = [env.register(city="Lyon") for _ in range(2)]
    germany = [env.register(country="DE", city="Berlin", privacy_level="country")]
    hidden = [env.register(country="KE", city="Nairobi", privacy_level="hidden") for _ in range(3)]

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        for location in paris + lyon + germany + hidden:
            assert (await env.live.heartbeat(env.token(location))).ok
        return await env.live.public_figures(env.summit.id), await env.live.organiser_figures(
            env.summit.id
        )

    public, organiser = run(scenario)

    assert public == {
        "type": "presence",
        "total": 11,
        "peak": 11,
        "countries": {"FR": 7},
        "elsewhere": 4,
        "country_count": 2,
        "cities": [{"name": "Paris", "lat": 48.85, "lon": 2.35, "count": 5}],
        "k": 5,
    }
    assert organiser["countries"] == {"DE": 1, "FR": 7, "ZZ": 3}
    assert sorted((c["name"], c["count"]) for c in organiser["cities"]) == [
        ("Lyon", 2),
        ("Paris", 5),
    ]


def test_figure_stream_coalesces_to_one_update_per_interval(env: Env) -> None:
    channel = presence_channel(str(env.summit.id))

    async def scenario() -> list[tuple[float, int]]:
        received: list[tuple[float, int]] = []
        stream = env.live.figure_stream(env.summit.id)
        async with contextlib.aclosing(stream):
            first = await anext(stream)
            assert first is not None
            start = time.monotonic()

            async def collect() -> None:
                async for message in stream:
                    assert message is not None
                    received.append((time.monotonic() - start, message["total"]))

            collector = asyncio.create_task(collect())
            await asyncio.sleep(0.05)  # the collector now waits for a message
            for n in range(1, 21):
                await env.live.pubsub.publish(channel, {"type": "presence", "total": n})
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.5)
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        return received

    received = run(scenario)

    # The first message goes out at once, the newest one an interval (0.5 s) later;
    # the 18 in between are dropped, and nothing else follows.
    assert [total for _, total in received] == [1, 20]
    assert received[1][0] - received[0][0] >= 0.45


def test_sweep_publishes_only_when_someone_went_offline(env: Env) -> None:
    # Moved from tests/presence/test_messages.py: the public message is LiveService's now.
    halls = [env.register(label=f"Hall {i}", country="DE", city="") for i in range(6)]

    async def scenario() -> list[object]:
        await env.live.heartbeat(env.token(halls[0]))
        env.clock.now += 1.0
        for hall in halls[1:]:
            await env.live.heartbeat(env.token(hall))
        await env.live.publish_dirty()  # the arrivals' figures, before we listen
        start = env.clock.now - 1.0
        async with env.live.pubsub.subscribe(presence_channel(str(env.summit.id))) as sub:
            nothing_gone = await env.live.sweep(now=start + TIMEOUT - 0.5)
            await env.live.publish_dirty()
            gone = await env.live.sweep(now=start + TIMEOUT + 0.5)
            await env.live.publish_dirty()
            message = await sub.get(timeout=5)
            silence = await sub.get(timeout=0.2)
        return [nothing_gone, gone, message, silence]

    assert run(scenario) == [
        [],
        [halls[0].public_id],
        {
            "type": "presence",
            "total": 5,
            "countries": {"DE": 5},
            "elsewhere": 0,
            "peak": 6,
            "country_count": 1,
            "cities": [],
            "k": 5,
        },
        None,
    ]


def test_publish_dirty_pushes_public_figures_to_subscribers(env: Env) -> None:
    location = env.register()

    async def scenario() -> dict[str, Any] | None:
        async with env.live.pubsub.subscribe(presence_channel(str(env.summit.id))) as sub:
            await env.live.heartbeat(env.token(location))
            assert await env.live.publish_dirty() == 1
            return await sub.get(timeout=2)

    message = run(scenario)

    assert message is not None
    assert (message["total"], message["countries"], message["elsewhere"]) == (1, {}, 1)


def _flaky_env(database: Database, tmp_path: Path) -> tuple[Env, Flaky, Flaky]:
    presence, pubsub = Flaky(MemoryPresence(TIMEOUT, clock=FakeClock())), Flaky(MemoryPubSub())
    return _env(database, tmp_path, presence=presence, pubsub=pubsub), presence, pubsub


def test_figure_stream_stays_open_through_an_outage_and_resumes(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env, presence, pubsub = _flaky_env(database, tmp_path)
    location = env.register()

    async def scenario() -> tuple[Any, Any]:
        presence.down = pubsub.down = True
        stream = env.live.figure_stream(env.summit.id)
        async with contextlib.aclosing(stream):
            during = await anext(stream)
            presence.down = pubsub.down = False
            await env.live.heartbeat(env.token(location))
            after = await asyncio.wait_for(anext(stream), 5)
        return during, after

    during, after = run(scenario)

    assert during is None  # a keep-alive, not an error
    assert after["total"] == 1
    assert [r.exc_info for r in caplog.records if r.exc_info] == []
    assert [r.levelname for r in caplog.records if "unavailable" in r.getMessage()] == ["WARNING"]


def test_location_changed_during_an_outage_still_forgets_the_cached_identity(
    database: Database, tmp_path: Path
) -> None:
    env, presence, pubsub = _flaky_env(database, tmp_path)
    location = env.register()

    async def scenario() -> Outcome:
        await env.live.heartbeat(env.token(location))
        with env.database.session() as db:
            row = db.get(Location, location.id)
            assert row is not None
            locations.revoke_location(db, row)
        presence.down = pubsub.down = True
        await env.live.location_changed(env.summit.id, location.public_id, offline=True)
        presence.down = pubsub.down = False
        return await env.live.heartbeat(env.token(location))

    assert run(scenario).reason == Reason.REVOKED
    assert env.live.outages.active


def test_outage_log_says_start_tally_and_end_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    outages = OutageLog(logging.getLogger("test.outage"), every_s=10.0, quiet_s=5.0, clock=clock)
    refused = ConnectionRefusedError(111, "Connection refused")

    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(1000):
            outages.failed("heartbeat", refused)
        clock.now += 10.0
        outages.failed("heartbeat", refused)
        clock.now += 4.9
        outages.settle()  # not quiet long enough yet
        still_active = outages.active
        clock.now += 0.1
        outages.settle()
        outages.settle()

    lines = [r.getMessage() for r in caplog.records]
    assert still_active
    assert len(lines) == 3
    assert lines[0].startswith("presence back-end unavailable (heartbeat: ")
    assert "still unavailable after 10 s (1000 failures since the last line" in lines[1]
    assert lines[2] == "presence back-end back: unavailable for 10.0 s (1001 failures)"
    assert not outages.active


def test_dashboard_lists_show_arrivals_and_drops_after_they_are_stored(env: Env) -> None:
    arriving = env.register(label="Arriving hall")
    leaving = env.register(label="Leaving hall", country="KE", city="")

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any]]:
        channel = "location-transitions:" + str(env.summit.id)
        async with env.live.pubsub.subscribe(channel) as sub:
            await env.live.heartbeat(env.token(leaving))
            await env.live.flush_transitions()
            env.clock.now += TIMEOUT + 1
            await env.live.sweep()
            await env.live.heartbeat(env.token(arriving))
            await env.live.flush_transitions()
            announced = await sub.get(timeout=2)
        return announced, await env.live.dashboard_lists(env.summit.id)

    announced, lists = run(scenario)

    assert announced == {"type": "transitions"}
    assert [(a["label"], a["country"]) for a in lists["arrivals"]] == [
        ("Arriving hall", "FR"),
        ("Leaving hall", "KE"),
    ]
    assert [(d["label"], d["country"]) for d in lists["drops"]] == [("Leaving hall", "KE")]


def test_refresh_reads_identities_a_page_at_a_time_and_keeps_unchanged_ones(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identities_module, "IDENTITY_PAGE", 2)
    monkeypatch.setattr(identities_module, "IDENTITY_PAGE_PAUSE_S", 0.0)
    made = [env.register(city="Paris") for _ in range(5)]
    pending = env.register(city="Lyon", approve=False)

    async def scenario() -> tuple[set[str], bool]:
        await env.live.refresh_summits()
        first = dict(env.live.identities.entries)
        await env.live.refresh_summits()
        kept = all(env.live.identities.entries[k] is first[k] for k in first)
        return set(first), kept

    cached, kept = run(scenario)

    assert cached == {loc.public_id for loc in made} | {pending.public_id}
    assert kept  # an unchanged identity is the same object after a refresh


def test_reissue_racing_a_heartbeat_on_another_worker_stops_counting_at_once(
    database: Database, tmp_path: Path
) -> None:
    shared, channel = MemoryPresence(TIMEOUT), MemoryPubSub()
    first = _env(database, tmp_path, shared, channel)
    second = LiveService(
        settings=first.live.settings,
        database=database,
        presence=shared,
        pubsub=channel,
        wall_clock=lambda: WALL,
    )
    location = first.register()
    old_secret = TEST_LINKS.open(location)

    async def scenario() -> tuple[int, int, Any]:
        follower = asyncio.create_task(second.follow_changes())
        await asyncio.sleep(0)  # subscribed
        await second.heartbeat(first.token(location))  # the second worker caches the identity
        with database.session() as db:
            locations.reissue_link(db, db.get(Location, location.id), None, TEST_LINKS)  # type: ignore[arg-type]
        await first.live.location_changed(first.summit.id, location.public_id, offline=True)
        # Verified on the second worker against its cached identity before the change
        # reached it: counted again, after the first worker's forget.
        await second.heartbeat(first.token(location, secret=old_secret))
        racing = await first.online()
        await asyncio.sleep(0.05)  # the change reaches the second worker
        after = await first.online()
        refused = await second.heartbeat(first.token(location, secret=old_secret))
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        return racing, after, refused

    racing, after, refused = run(scenario)

    assert (racing, after) == (1, 0)
    assert refused.reason == Reason.BAD_SIGNATURE


def test_simulated_location_is_refused_outside_a_demo_summit(env: Env) -> None:
    location = env.register()
    with env.database.session() as db:
        row = db.get(Location, location.id)
        assert row is not None
        row.simulated = True  # the demo's audience, copied into a real summit
    counted: list[str] = []
    env.live.on_accepted = counted.append

    async def scenario() -> tuple[Any, int, Any, int]:
        try:
            refused = await env.live.heartbeat(env.token(location))
            online_before = await env.online()
            with env.database.session() as db:
                summit = db.get(Summit, env.summit.id)
                assert summit is not None
                summit.is_demo = True
            env.live.forget_identity(location.public_id)
            accepted = await env.live.heartbeat(env.token(location))
            return refused, online_before, accepted, await env.online()
        finally:
            await env.live.stop()

    refused, online_before, accepted, online_after = run(scenario)

    assert (refused.reason, online_before) == (Reason.SIMULATED, 0)
    assert (accepted.ok, online_after) == (True, 1)
    assert counted == [location.public_id]  # attendance heard only the demo's beat


def test_identities_refreshed_in_bulk_know_simulated_locations_outside_demos(env: Env) -> None:
    real = env.register()
    simulated = env.register(label="Simulated")
    with env.database.session() as db:
        row = db.get(Location, simulated.id)
        assert row is not None
        row.simulated = True

    with env.database.session() as db:
        identities, _ = locations.identities_of_live_summits(db, TEST_LINKS)

    flags = {i.location_id: i.simulated_outside_demo for i in identities}
    assert flags == {real.public_id: False, simulated.public_id: True}
