"""Load tool arithmetic: percentiles, summed counters, splitting, reading secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from summitcast.loadtest.client import SimulatedLocation
from summitcast.loadtest.run import LoadResult, Sample, read_secrets, split
from summitcast.loadtest.stats import add_ticks, percentile

pytestmark = pytest.mark.unit


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )


def test_percentile_empty_is_none() -> None:
    assert percentile([], 0.99) is None


def test_add_ticks_sums_counters_and_takes_latest_all_online() -> None:
    ticks = [
        {"sent": 3, "online": 2, "refused": {"replay": 1}, "all_online_at": 1.5},
        {"sent": 4, "online": 1, "refused": {"replay": 2, "stale": 1}, "all_online_at": 2.5},
    ]
    assert add_ticks(ticks) == {
        "sent": 7,
        "online": 3,
        "refused": {"replay": 3, "stale": 1},
        "all_online_at": 2.5,
    }


def test_add_ticks_all_online_unknown_while_one_process_is_not() -> None:
    ticks = [{"all_online_at": 1.0}, {"all_online_at": None}]
    assert add_ticks(ticks)["all_online_at"] is None


def test_split_deals_round_robin() -> None:
    locations = [SimulatedLocation(str(i), "s") for i in range(5)]
    parts = split(locations, 2)
    assert [[loc.location_id for loc in part] for part in parts] == [["0", "2", "4"], ["1", "3"]]


def test_read_secrets_stops_at_limit(tmp_path: Path) -> None:
    path = tmp_path / "secrets.jsonl"
    lines = [json.dumps({"id": f"loc{i}", "secret": f"s{i}", "country": "DE"}) for i in range(3)]
    path.write_text("\n".join(lines) + "\n")
    assert read_secrets(path, limit=2) == (
        SimulatedLocation("loc0", "s0"),
        SimulatedLocation("loc1", "s1"),
    )


def test_result_exactness_counts_only_samples_after_everyone_is_online() -> None:
    result = LoadResult(plan_locations=10, processes=1, duration_s=10)
    result.totals = {"all_online_at": 1.0}
    result.server_all_online_at = 3.0
    result.samples = [Sample(2.0, 4, 10), Sample(3.0, 10, 10), Sample(4.0, 9, 10)]
    assert (result.exact_share(), result.max_diff()) == (0.5, 1)
