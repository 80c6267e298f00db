"""Redis down under page and heartbeat load: pages keep working, presence answers 503, no 500."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.services import locations
from tests.faults.load import SLUG, Tally, drill_env, screen_location, seed
from tests.faults.servers import private_redis, serve, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

DOWN_S = 2.0
PAGES = (f"/s/{SLUG}", f"/s/{SLUG}/live", f"/s/{SLUG}/register", "/login", "/api/summits")


def _load(base_url: str, screen: locations.BulkRegistered, stop: threading.Event) -> Tally:
    """Pages, figures and a screen's heartbeats (every 0.2 s) until stop is set."""
    tally = Tally()
    with httpx.Client(base_url=base_url, timeout=20) as client:
        seq = 0
        while not stop.is_set():
            for page in PAGES:
                tally.note("page", client.get(page))
            tally.note("figures", client.get(f"/live/s/{SLUG}/figures.json"))
            beat = sign_heartbeat(
                screen.secret.encode(), screen.location_id, "drill-epoch", seq, int(time.time())
            )
            body = json.dumps({"token": encode_heartbeat(beat)})
            tally.note("heartbeat", client.post("/live/heartbeat", content=body))
            seq += 1
            time.sleep(0.2)
    return tally


def test_redis_down_degrades_presence_only_and_recovers(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48)
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'summitcast.db'}"
    seed(url, secret, invitations=0)
    screen = screen_location(url, secret)
    with private_redis() as redis_server:
        env = drill_env(url, secret) | {
            "SUMMITCAST_DATA_DIR": str(data),
            "SUMMITCAST_REDIS_URL": redis_server.url,
        }
        with serve(env, tmp_path) as server:
            stop = threading.Event()
            results: list[Tally] = []
            runner = threading.Thread(
                target=lambda: results.append(_load(server.base_url, screen, stop))
            )
            runner.start()
            try:
                time.sleep(1.0)
                redis_server.stop()  # SIGKILL, nothing persisted
                figures_down = httpx.get(f"{server.base_url}/live/s/{SLUG}/figures.json")
                page_down = httpx.get(f"{server.base_url}/s/{SLUG}")
                time.sleep(DOWN_S)
                redis_server.start()
                back_at = time.monotonic()
                # Presence comes back by itself (no restart of the app).
                wait_until(
                    lambda: (
                        httpx.get(f"{server.base_url}/live/s/{SLUG}/figures.json").status_code
                        == 200
                    ),
                    30,
                    "figures answered again",
                )
                time.sleep(1.0)  # a few more beats after the return
                recovered_s = time.monotonic() - back_at
            finally:
                stop.set()
                runner.join(timeout=60)
            log = server.log.read_text(errors="replace")
    [tally] = results

    assert figures_down.status_code == 503, figures_down.text
    assert figures_down.headers["retry-after"] == "2"
    assert page_down.status_code == 200  # pages that need no presence keep working
    assert tally.wrong == []  # no 500, and every 503 carries Retry-After
    assert set(tally.statuses) <= {200, 503}, tally.sample
    assert tally.last_ok["heartbeat"] > back_at  # beats count again
    assert recovered_s < 30
    assert "Traceback" not in log, log[log.index("Traceback") - 500 : log.index("Traceback") + 3000]
    # One line an outage per source, not one per beat or per retry.
    assert log.count("redis pub/sub read failed") <= 1, log
    assert len(log.splitlines()) < 40, log
