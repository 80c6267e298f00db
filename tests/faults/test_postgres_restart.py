"""PostgreSQL restarted under load: 503 + Retry-After meanwhile, back by itself; then kill -9."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from tests.faults.load import (
    KINDS,
    SLUG,
    Load,
    drill_env,
    missing_writes,
    screen_location,
    seed,
)
from tests.faults.servers import private_postgres, serve, wait_until

pytestmark = pytest.mark.e2e

DOWN_S = 3.0


def test_503_while_postgres_restarts_then_back_and_no_write_lost_to_kill_9(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48)
    with private_postgres() as postgres:
        tokens = seed(postgres.url, secret, invitations=2)
        screen = screen_location(postgres.url, secret)
        env = drill_env(postgres.url, secret) | {"SUMMITCAST_DATA_DIR": str(tmp_path / "data")}
        with serve(env, tmp_path) as server:
            load = Load(server.base_url, tokens)
            load.start()
            try:
                wait_until(
                    lambda: all(kind in load.tally.last_ok for kind in KINDS),
                    30,
                    lambda: f"every kind of request answered: {load.tally.sample}",
                )
                postgres.stop()
                stopped_at = time.monotonic()
                during = httpx.get(f"{server.base_url}/s/{SLUG}", timeout=20)
                # A screen's heartbeat does not need PostgreSQL: identities are cached.
                beat = sign_heartbeat(
                    screen.secret.encode(), screen.location_id, "drill-epoch", 1, int(time.time())
                )
                body = json.dumps({"token": encode_heartbeat(beat)})
                heartbeat = httpx.post(f"{server.base_url}/live/heartbeat", content=body)
                time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped_at)))
                outage_statuses = dict(load.tally.statuses)
                postgres.start()
                back_at = time.monotonic()
                # Each kind of request succeeds again, with no restart of the app.
                wait_until(
                    lambda: all(load.tally.last_ok[kind] > back_at for kind in KINDS),
                    30,
                    lambda: f"every kind answered again: {load.tally.sample}",
                )
                log = server.log.read_text(errors="replace")
                # Then kill -9 of the app on PostgreSQL (test_kill_app.py restarts it on
                # SQLite): one server start less in `make test`.
                unanswered_before_kill = load.tally.refused
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
                wait_until(lambda: load.tally.refused > 0, 10, "the clients saw the kill")
            finally:
                tally = load.finish()
        lost = missing_writes(postgres.url, tmp_path / "data" / "uploads", tally)

    assert during.status_code == 503, during.text
    assert during.headers["retry-after"] == "5"
    assert heartbeat.status_code == 200, heartbeat.text  # still counted
    assert outage_statuses.get(503, 0) > 0
    assert tally.wrong == []
    assert unanswered_before_kill == 0  # the app itself stayed up through the restart
    assert lost == []
    assert tally.registered
    assert tally.speakers
    assert tally.acked
    # One line for the outage, not a traceback per request or per background tick.
    assert "Traceback" not in log, log[log.index("Traceback") - 500 : log.index("Traceback") + 4000]
    assert log.count("database unavailable") <= 4, log
