"""Random operation sequences: both back-ends agree with a brute-force model of the rules."""

from __future__ import annotations

import random

import pytest

from summitcast.domain.presence import is_online
from tests.presence.conftest import TIMEOUT_S, Backend

pytestmark = pytest.mark.integration


class Model:
    """The presence rules written the slow, obvious way."""

    def __init__(self) -> None:
        self.tracked: dict[str, tuple[float, str]] = {}
        self.peak = 0

    def online(self, now: float) -> dict[str, str]:
        return {
            loc: country
            for loc, (last, country) in self.tracked.items()
            if is_online(last, now, TIMEOUT_S)
        }

    def heartbeat(self, loc: str, country: str, now: float) -> bool:
        last = self.tracked.get(loc, (None, ""))[0]
        came = not is_online(last, now, TIMEOUT_S)
        self.tracked[loc] = (max(now, last) if last is not None else now, country)
        if came:
            self.peak = max(self.peak, len(self.online(now)))
        return came

    def expire(self, now: float) -> list[str]:
        gone = sorted(
            (last, loc)
            for loc, (last, _) in self.tracked.items()
            if not is_online(last, now, TIMEOUT_S)
        )
        for _, loc in gone:
            del self.tracked[loc]
        return [loc for _, loc in gone]

    def counts(self, now: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for country in self.online(now).values():
            counts[country] = counts.get(country, 0) + 1
        return dict(sorted(counts.items()))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_presence_random_operations_match_model(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    model = Model()
    locations = [f"loc-{i:02d}" for i in range(25)]
    countries = ["DE", "FR", "BR", "ZZ"]

    async def scenario(b: Backend) -> int:
        workers = [b.presence(), b.presence()]
        now = 0.0
        checked = 0
        for _ in range(400):
            now += rng.choice([0.0, 0.5, 1.0, 3.0, 10.0])
            p = rng.choice(workers)
            # A worker's clock may lag a little behind the others.
            t = now - rng.choice([0.0, 0.0, 0.0, 2.0])
            op = rng.random()
            if op < 0.6:
                loc, country = rng.choice(locations), rng.choice(countries)
                assert await p.heartbeat("s", loc, country, now=t) == model.heartbeat(
                    loc, country, t
                )
            elif op < 0.7:
                assert await p.expire("s", now=now) == model.expire(now)
            elif op < 0.75:
                loc = rng.choice(locations)
                assert await p.forget("s", loc) == (model.tracked.pop(loc, None) is not None)
            else:
                snapshot = await p.snapshot("s", now=now)
                assert snapshot.by_country == model.counts(now)
                assert snapshot.total == len(model.online(now))
                assert snapshot.peak == model.peak
                assert await p.online_count("s", now=now) == snapshot.total
                checked += 1
        return checked

    assert backend.run(scenario) > 50
