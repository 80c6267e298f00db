"""The built presence client of a location screen, run in Node against a fake server.

tests/web/screen_sim.mjs loads static/build/live.js as a page would (window, document,
WebSocket) and runs many screens on a simulated clock, so two minutes take a second.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "src" / "summitcast" / "web" / "static" / "build" / "live.js"
SIM = Path(__file__).with_name("screen_sim.mjs")

pytestmark = pytest.mark.unit


def simulate(scenario: str, screens: int, seconds: int) -> dict[str, Any]:
    """What ``screens`` screens did for ``seconds`` of simulated time against the fake server."""
    node = shutil.which("node")
    if node is None or not BUNDLE.is_file():
        pytest.skip("needs node and the built assets (make assets)")
    done = subprocess.run(
        [node, str(SIM), str(BUNDLE), scenario, str(screens), str(seconds)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _per_screen(events: list[dict[str, Any]]) -> dict[int, list[float]]:
    found: dict[int, list[float]] = defaultdict(list)
    for event in events:
        found[event["screen"]].append(event["at"])
    return found


def test_100_refused_screens_make_fewer_than_300_attempts_in_2_minutes() -> None:
    result = simulate("refused", 100, 120)

    told = [[s["error"] for s in seen if s["state"] == "refused"] for seen in result["statuses"]]
    assert len(result["attempts"]) < 300  # the old client made ~15,900 (every ~0.75 s)
    assert {reason for reasons in told for reason in reasons} == {"bad_signature"}
    assert min(len(reasons) for reasons in told) >= 1  # every screen told its host
    assert min(result["refused_waits_ms"]) >= 30_000
    assert max(result["refused_waits_ms"]) <= 300_000


def test_a_server_restart_is_retried_within_8_seconds() -> None:
    result = simulate("restart", 20, 120)

    gaps = [
        later - earlier
        for times in _per_screen(result["attempts"]).values()
        for earlier, later in itertools.pairwise(times)
    ]
    # Each attempt is closed with 1012 25 ms after it started; then at most 8 s of backoff.
    assert len(gaps) > 20 * 10
    assert max(gaps) <= 8_000 + 50


def test_screens_that_connected_together_spread_their_beats_over_the_interval() -> None:
    result = simulate("herd", 100, 60)

    beats = [b["at"] for b in result["beats"]]
    # After the first (at once) the second beats fall at random points of the 10 s
    # interval; after the server closes every socket at 30 s, the first beats on the new
    # sockets do too. Old client: every screen in the same 2 s of each interval.
    steady = Counter(int(at // 1000) for at in beats if 10_000 <= at < 20_000)
    reconnected = Counter(int(at // 1000) for at in beats if 31_500 <= at < 41_500)
    assert len({b["screen"] for b in result["beats"] if b["at"] < 50}) == 100  # at once
    assert (len(steady), len(reconnected) >= 9) == (10, True)
    assert max(steady.values()) < 30
    assert max(reconnected.values()) < 30
