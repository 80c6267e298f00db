"""`summitcast serve --workers 2` on Redis: one exact count whichever worker answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from summitcast.loadtest.run import LoadPlan, LoadResult, LoadTest
from tests.loadtest.servers import (
    SLUG,
    own_postgres,
    presence_env,
    private_redis,
    seed,
    serve,
    socket_count,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LOCATIONS = 300
INTERVAL_S = 1.0


def test_serve_two_workers_report_one_exact_count(tmp_path: Path) -> None:
    with own_postgres() as database_url, private_redis() as redis_server:
        located = seed(database_url, LOCATIONS)
        env = presence_env(database_url, redis_server.url, interval_s=INTERVAL_S)
        with serve(env, tmp_path, workers=2) as server:
            plan = LoadPlan(
                base_url=server.base_url,
                summit=SLUG,
                locations=tuple(located),
                duration_s=12,
                ramp_s=1,
                sample_every_s=0.5,
                timeout_s=INTERVAL_S * 3,
            )
            results: list[LoadResult] = []
            runner = threading.Thread(target=lambda: results.append(LoadTest(plan, None).run()))
            runner.start()
            try:
                time.sleep(8)
                sockets = [socket_count(pid) for pid in server.worker_pids()]
                # Fresh connections land on either worker; every one must see them all.
                totals = {server.figures_total() for _ in range(30)}
            finally:
                runner.join(timeout=60)
    result = results[0]
    summary = result.summary()
    assert len(sockets) == 2
    # Both workers hold a real share of the screens (the kernel spreads accepts).
    assert min(sockets) > LOCATIONS // 10, sockets
    assert totals == {LOCATIONS}
    assert (summary["lost"], summary["never_online"], summary["refused"]) == (0, 0, {})
    assert summary["count_exact_after_all_online"] == 1.0, result.samples
