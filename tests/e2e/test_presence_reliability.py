"""Presence under load survives a Redis restart and a killed worker (bounded, < 60 s each)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.loadtest.client import SimulatedLocation
from summitcast.loadtest.run import LoadPlan, LoadResult, LoadTest
from summitcast.services import locations
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from tests.conftest import make_summit
from tests.loadtest.servers import (
    SERVE_KEY,
    SLUG,
    own_postgres,
    presence_env,
    private_redis,
    seed,
    serve,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LOCATIONS = 300
INTERVAL_S = 1.0
EVENT_AT_S = 7.0  # seconds into the run when the fault happens


def _start(base_url: str, located: list, duration_s: float) -> tuple[threading.Thread, list]:  # type: ignore[type-arg]
    plan = LoadPlan(
        base_url=base_url,
        summit=SLUG,
        locations=tuple(located),
        duration_s=duration_s,
        ramp_s=1,
        sample_every_s=0.5,
        timeout_s=INTERVAL_S * 3,
    )
    results: list[LoadResult] = []
    runner = threading.Thread(target=lambda: results.append(LoadTest(plan, None).run()))
    runner.start()
    return runner, results


def _probe_location(database_url: str) -> SimulatedLocation:
    """An approved location of another summit, so its beats leave the load's counts alone."""
    database = Database(database_url)
    try:
        summit = make_summit(database, slug="probe-summit")
        with database.session() as db:
            made = locations.register_locations_bulk(
                db,
                db.merge(summit),
                [locations.LocationInput(label="Probe", country="FR")],
                links=LinkSecrets(SERVE_KEY),
            )
    finally:
        database.dispose()
    return SimulatedLocation(made[0].location_id, made[0].secret)


def _beat(ws: ClientConnection, probe: SimulatedLocation, seq: int) -> dict[str, object]:
    """Send one acknowledged heartbeat on the socket and return the server's answer."""
    heartbeat = sign_heartbeat(
        probe.secret.encode(), probe.location_id, "probe-epoch", seq, int(time.time())
    )
    ws.send(json.dumps({"type": "hb", "token": encode_heartbeat(heartbeat), "ack": True}))
    answer: dict[str, object] = json.loads(ws.recv(timeout=10))
    return answer


def _post(base_url: str, probe: SimulatedLocation, seq: int) -> httpx.Response:
    heartbeat = sign_heartbeat(
        probe.secret.encode(), probe.location_id, "probe-http", seq, int(time.time())
    )
    body = json.dumps({"token": encode_heartbeat(heartbeat)})
    return httpx.post(f"{base_url}/live/heartbeat", content=body, timeout=10)


def _after(result: LoadResult, at_s: float) -> list[tuple[float, int | None, int]]:
    return [(s.at_s, s.server, s.expected) for s in result.samples if s.at_s >= at_s]


def test_presence_recovers_after_redis_restart(tmp_path: Path) -> None:
    with own_postgres() as database_url, private_redis() as redis_server:
        located = seed(database_url, LOCATIONS)
        probe = _probe_location(database_url)
        env = presence_env(database_url, redis_server.url, interval_s=INTERVAL_S)
        with serve(env, tmp_path, workers=2) as server:
            started = time.monotonic()
            runner, results = _start(server.base_url, located, duration_s=18)
            ws_url = server.base_url.replace("http://", "ws://") + "/live/ws"
            try:
                with connect(ws_url, open_timeout=10) as ws:
                    json.loads(ws.recv(timeout=10))  # hello
                    before = _beat(ws, probe, 0)
                    # A screen beats every interval (a silent socket is closed after a while).
                    seq = 1
                    while time.monotonic() - started < EVENT_AT_S + 2.5 - INTERVAL_S:
                        time.sleep(INTERVAL_S)
                        assert _beat(ws, probe, seq) == {"type": "ack", "seq": seq}
                        seq += 1
                    time.sleep(max(0.0, EVENT_AT_S + 2.5 - (time.monotonic() - started)))
                    restarted_at = time.monotonic() - started - 2.5  # run time starts ~2.5 s late
                    redis_server.stop()  # SIGKILL, and no persistence: every key is gone
                    down_at = time.monotonic()
                    during = _beat(ws, probe, seq)
                    fallback_during = _post(server.base_url, probe, 0)
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - down_at)))
                    redis_server.start()
                    # The same socket, never closed: its next beat (one interval on) counts.
                    time.sleep(INTERVAL_S)
                    after = _beat(ws, probe, seq + 1)
                fallback_after = _post(server.base_url, probe, 1)
            finally:
                runner.join(timeout=60)
            log = server.log.read_text(errors="replace")
        database = Database(database_url)
        try:
            with database.session() as db:
                from summitcast.services.programme import get_summit

                approved = locations.status_counts(db, get_summit(db, SLUG))["approved"]
        finally:
            database.dispose()
    result = results[0]
    errors = [s for s in result.samples if s.error]
    # Down for 1 s, then two intervals (and one tick of the clients' counters) to recover.
    # Screens beat first at a random phase of the interval after reconnecting.
    recovered = _after(result, restarted_at + 1.0 + 3 * INTERVAL_S + 1.0)
    assert (before, during, after) == (
        {"type": "ack", "seq": 0},
        {"type": "error", "reason": "unavailable"},
        {"type": "ack", "seq": seq + 1},
    )
    assert fallback_during.status_code == 503, fallback_during.text
    assert fallback_during.headers["retry-after"] == "2"
    assert fallback_after.status_code == 200, fallback_after.text
    assert all(s.error != "HTTP 500" for s in errors), errors
    assert " 500 " not in log
    # The outage is logged as a few warnings, never as a traceback or an ASGI error.
    assert "Traceback" not in log, log[
        log.index("Traceback") - 2000 : log.index("Traceback") + 3000
    ]
    assert "Exception in ASGI application" not in log
    assert "presence back-end unavailable" in log
    assert approved == LOCATIONS  # no registration lost
    assert recovered, result.samples
    assert all(server == LOCATIONS for _, server, _ in recovered), recovered
    assert result.summary()["never_online"] == 0


def test_presence_exact_again_after_a_worker_is_killed(tmp_path: Path) -> None:
    with own_postgres() as database_url, private_redis() as redis_server:
        located = seed(database_url, LOCATIONS)
        env = presence_env(database_url, redis_server.url, interval_s=INTERVAL_S)
        with serve(env, tmp_path, workers=2) as server:
            started = time.monotonic()
            runner, results = _start(server.base_url, located, duration_s=16)
            try:
                time.sleep(EVENT_AT_S + 2.5 - (time.monotonic() - started))
                victim = server.worker_pids()[0]
                killed_at = time.monotonic() - started - 2.5
                os.kill(victim, signal.SIGKILL)
            finally:
                runner.join(timeout=60)
    result = results[0]
    summary = result.summary()
    # Reconnected screens beat first at a random phase of the interval (herds spread out),
    # so a screen counts again up to one interval after its socket is back.
    settled = _after(result, killed_at + 3 * INTERVAL_S + 1.0)
    assert isinstance(summary["reconnects"], int)
    assert summary["reconnects"] > 0  # the killed worker's screens came back
    assert settled, result.samples
    assert all(server == expected == LOCATIONS for _, server, expected in settled), settled
    assert [s for s in result.samples if s.error] == []
