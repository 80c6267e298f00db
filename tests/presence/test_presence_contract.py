"""The Presence contract, run against the in-process and the Redis back-end alike."""

from __future__ import annotations

import asyncio

import pytest

from summitcast.presence.base import PresenceSnapshot
from tests.presence.conftest import TIMEOUT_S, Backend

pytestmark = pytest.mark.integration

S = "summit-1"


def test_heartbeat_first_beat_comes_online(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[bool]:
        p = b.presence()
        return [
            await p.heartbeat(S, "loc-a", "DE", now=100.0),
            await p.heartbeat(S, "loc-a", "DE", now=110.0),
            await p.heartbeat(S, "loc-b", "DE", now=111.0),
        ]

    assert backend.run(scenario) == [True, False, True]


def test_online_until_timeout_never_sooner(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=100.0)
        just_before = 100.0 + TIMEOUT_S - 0.001
        at_timeout = 100.0 + TIMEOUT_S
        return [
            await p.is_online(S, "loc-a", now=just_before),
            await p.online_count(S, now=just_before),
            await p.expire(S, now=just_before),
            await p.is_online(S, "loc-a", now=at_timeout),
            await p.online_count(S, now=at_timeout),
            await p.expire(S, now=at_timeout),
            await p.expire(S, now=at_timeout + 1),
        ]

    assert backend.run(scenario) == [True, 1, [], False, 0, ["loc-a"], []]


def test_expire_reports_each_gone_location_once_oldest_first(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[list[str]]:
        p = b.presence()
        await p.heartbeat(S, "loc-c", "FR", now=3.0)
        await p.heartbeat(S, "loc-a", "DE", now=1.0)
        await p.heartbeat(S, "loc-b", "DE", now=2.0)
        await p.heartbeat(S, "loc-d", "DE", now=50.0)
        return [await p.expire(S, now=40.0), await p.expire(S, now=40.0)]

    assert backend.run(scenario) == [["loc-a", "loc-b", "loc-c"], []]


def test_expire_many_locations_crosses_batches(backend: Backend) -> None:
    async def scenario(b: Backend) -> tuple[int, int, int]:
        p = b.presence()
        for i in range(2500):
            await p.heartbeat(S, f"loc-{i}", "DE", now=float(i % 7))
        gone = await p.expire(S, now=100.0)
        return len(gone), len(set(gone)), await p.online_count(S, now=100.0)

    assert backend.run(scenario) == (2500, 2500, 0)


def test_heartbeat_after_timeout_before_expire_comes_online_again(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=100.0)
        return [
            await p.heartbeat(S, "loc-a", "DE", now=140.0),
            await p.expire(S, now=141.0),
            await p.counts_by_country(S, now=141.0),
        ]

    assert backend.run(scenario) == [True, [], {"DE": 1}]


def test_heartbeat_from_lagging_clock_keeps_latest_time(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=100.0)
        return [
            await p.heartbeat(S, "loc-a", "DE", now=90.0),
            await p.is_online(S, "loc-a", now=134.5),
            await p.expire(S, now=126.0),
            await p.expire(S, now=135.0),
        ]

    assert backend.run(scenario) == [False, True, [], ["loc-a"]]


def test_counts_by_country_exact_before_and_after_expire(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[dict[str, int]]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=0.0)
        await p.heartbeat(S, "loc-b", "DE", now=10.0)
        await p.heartbeat(S, "loc-c", "FR", now=10.0)
        await p.heartbeat(S, "loc-d", "BR", now=20.0)
        before = await p.counts_by_country(S, now=40.0)  # loc-a is past its timeout
        later = await p.counts_by_country(S, now=50.0)  # so are loc-b and loc-c
        await p.expire(S, now=50.0)
        after = await p.counts_by_country(S, now=50.0)
        return [before, later, after]

    assert backend.run(scenario) == [
        {"BR": 1, "DE": 1, "FR": 1},
        {"BR": 1},
        {"BR": 1},
    ]


def test_heartbeat_with_new_country_moves_the_count(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=1.0)
        await p.heartbeat(S, "loc-b", "DE", now=1.0)
        came = await p.heartbeat(S, "loc-a", "ZZ", now=2.0)
        return [came, await p.counts_by_country(S, now=3.0)]

    assert backend.run(scenario) == [False, {"ZZ": 1, "DE": 1}]


def test_peak_records_highest_count_and_when(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        empty = await p.peak(S)
        for i, t in enumerate((1.0, 2.0, 3.0)):
            await p.heartbeat(S, f"loc-{i}", "DE", now=t)
        await p.heartbeat(S, "loc-0", "DE", now=30.0)
        # loc-1 and loc-2 time out; two newcomers bring the count back to 3, not above.
        await p.heartbeat(S, "loc-3", "DE", now=38.0)
        await p.heartbeat(S, "loc-4", "DE", now=38.5)
        after_churn = await p.peak(S)
        await p.heartbeat(S, "loc-5", "DE", now=39.0)
        return [empty, after_churn, await p.peak(S)]

    assert backend.run(scenario) == [(0, None), (3, 3.0), (4, 39.0)]


def test_forget_removes_location_at_once(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat(S, "loc-a", "DE", now=1.0)
        await p.heartbeat(S, "loc-b", "FR", now=1.0)
        return [
            await p.forget(S, "loc-a"),
            await p.is_online(S, "loc-a", now=2.0),
            await p.counts_by_country(S, now=2.0),
            await p.forget(S, "loc-a"),
            await p.expire(S, now=100.0),
            await p.heartbeat(S, "loc-a", "DE", now=101.0),
        ]

    assert backend.run(scenario) == [True, False, {"FR": 1}, False, ["loc-b"], True]


def test_snapshot_reads_total_countries_and_peak(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[PresenceSnapshot]:
        p = b.presence()
        first = await p.snapshot(S, now=0.0)
        await p.heartbeat(S, "loc-a", "DE", now=1.0)
        await p.heartbeat(S, "loc-b", "FR", now=2.0)
        await p.heartbeat(S, "loc-c", "FR", now=20.0)
        return [first, await p.snapshot(S, now=36.5)]

    assert backend.run(scenario) == [
        PresenceSnapshot(total=0, by_country={}, peak=0, peak_at=None),
        PresenceSnapshot(total=2, by_country={"FR": 2}, peak=3, peak_at=20.0),
    ]


def test_summits_are_counted_separately(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        await p.heartbeat("summit-1", "loc-a", "DE", now=1.0)
        await p.heartbeat("summit-2", "loc-b", "FR", now=1.0)
        return [
            await p.counts_by_country("summit-1", now=2.0),
            await p.online_count("summit-2", now=2.0),
            await p.is_online("summit-2", "loc-a", now=2.0),
            await p.online_count("summit-3", now=2.0),
        ]

    assert backend.run(scenario) == [{"DE": 1}, 1, False, 0]


def test_workers_share_presence(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        worker1, worker2 = b.presence(), b.presence()
        return [
            await worker1.heartbeat(S, "loc-a", "DE", now=1.0),
            await worker2.heartbeat(S, "loc-a", "DE", now=2.0),
            await worker2.online_count(S, now=3.0),
            await worker1.expire(S, now=40.0),
            await worker2.expire(S, now=40.0),
        ]

    assert backend.run(scenario) == [True, False, 1, ["loc-a"], []]


def test_concurrent_first_beats_from_two_workers_come_online_once(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[bool]:
        worker1, worker2 = b.presence(), b.presence()
        beats = [
            (worker1 if i % 2 else worker2).heartbeat(S, "loc-a", "DE", now=1.0 + i / 100)
            for i in range(20)
        ]
        return list(await asyncio.gather(*beats))

    assert backend.run(scenario).count(True) == 1


def test_check_and_store_seq_refuses_replay_across_workers(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[bool]:
        worker1, worker2 = b.presence(), b.presence()
        return [
            await worker1.check_and_store_seq("loc-a", "epoch-one", 5),
            await worker2.check_and_store_seq("loc-a", "epoch-one", 5),
            await worker2.check_and_store_seq("loc-a", "epoch-one", 4),
            await worker2.check_and_store_seq("loc-a", "epoch-one", 6),
            await worker1.check_and_store_seq("loc-a", "epoch-one", 6),
            await worker1.check_and_store_seq("loc-a", "epoch-two", 0),
            await worker2.check_and_store_seq("loc-b", "epoch-one", 0),
        ]

    assert backend.run(scenario) == [True, False, False, True, False, True, True]


def test_concurrent_claims_of_one_seq_accept_exactly_one(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[bool]:
        workers = [b.presence(), b.presence()]
        claims = [workers[i % 2].check_and_store_seq("loc-a", "epoch-one", 7) for i in range(20)]
        return list(await asyncio.gather(*claims))

    assert backend.run(scenario).count(True) == 1


def test_accept_refuses_replay_across_workers_and_records_nothing(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        worker1, worker2 = b.presence(), b.presence()
        return [
            await worker1.accept(S, "loc-a", "DE", "epoch-one", 5),
            await worker2.accept(S, "loc-a", "FR", "epoch-one", 5),  # replay: not recorded
            await worker2.counts_by_country(S),
            await worker2.accept(S, "loc-a", "DE", "epoch-one", 6),
            await worker1.accept(S, "loc-a", "DE", "epoch-two", 0),
            await worker1.check_and_store_seq("loc-a", "epoch-two", 0),  # one replay state
        ]

    assert backend.run(scenario) == [True, None, {"DE": 1}, False, False, False]


def test_accept_counts_the_map_cell_with_the_country(backend: Backend) -> None:
    cells = f"{S}:cells"

    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        return [
            await p.accept(S, "loc-a", "DE", "e", 0, (cells, "DE|52.5|13.4|Berlin")),
            await p.accept(S, "loc-b", "DE", "e", 0),
            await p.accept(S, "loc-a", "DE", "e", 1, (cells, "DE|52.5|13.4|Berlin")),
            await p.counts_by_country(S),
            await p.counts_by_country(cells),
            await p.accept(S, "loc-a", "DE", "e", 1, (cells, "DE|52.5|13.4|Berlin")),
            await p.counts_by_country(cells),
        ]

    assert backend.run(scenario) == [
        True,
        True,
        False,
        {"DE": 2},
        {"DE|52.5|13.4|Berlin": 1},
        None,
        {"DE|52.5|13.4|Berlin": 1},
    ]


def test_accept_and_heartbeat_agree_on_coming_online_and_peak(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        p = b.presence()
        return [
            await p.accept(S, "loc-a", "DE", "e", 0),
            await p.accept(S, "loc-b", "KE", "e", 0),
            await p.heartbeat(S, "loc-b", "KE"),
            (await p.snapshot(S)).total,
            (await p.peak(S))[0],
        ]

    assert backend.run(scenario) == [True, True, False, 2, 2]
