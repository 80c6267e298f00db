"""Stream health reaches the control room on a node that runs no encoders, through Redis."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from summitcast.app import create_app
from summitcast.storage.database import Database
from tests.e2e.broadcast_server import Broadcast, ffmpeg_children, free_port, running_server

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"


def _speed(node: Broadcast) -> object:
    """The encoder speed in a node's health view (None before the encoder reports)."""
    health = node.health()["health"]
    return health.get("speed") if isinstance(health, dict) else None


def test_control_room_on_a_web_node_shows_health_published_by_the_encoder_node(
    tmp_path: Path,
) -> None:
    prefix = f"test-health-{secrets.token_hex(4)}"  # its own channels on the shared Redis
    with running_server(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix) as encoders:
        # A second app on the same database and Redis, running no encoders of its own.
        settings = encoders.settings.model_copy(update={"broadcast_workers": False})
        database = Database(settings.effective_database_url)
        web_app = create_app(settings, database=database)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(web_app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        # The same signed session cookie is valid on both nodes (same secret key).
        web = httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies=encoders.client.cookies)
        control = f"/backstage/s/{encoders.slug}/sessions/{encoders.session_id}/control"
        try:
            assert web.get(f"{control}/health.json").json()["health"] is None  # nothing on air
            encoders.press("start-now")
            encoders.wait_for(lambda: _speed(encoders) is not None, 20, "the encoder")
            deadline = time.monotonic() + 10
            seen: dict[str, object] | None = None
            while time.monotonic() < deadline:
                seen = web.get(f"{control}/health.json").json()["health"]
                if seen and seen.get("speed"):
                    break
                time.sleep(0.3)
            assert seen is not None, "no health reached the web node"
            local = encoders.health()["health"]
            assert isinstance(local, dict)
            assert seen["node"] == local["node"]  # shown there as the encoder node's figures
            assert float(seen["published_s_ago"]) <= 2.0  # type: ignore[arg-type]
            for key in ("speed", "dropped_frames", "restarts", "segment_age_s", "input"):
                assert key in seen
            assert seen["encoder_running"] is True
            # The control room page on the web node shows the ingest of the right slot.
            page = web.get(control).text
            assert f"rtmp://127.0.0.1:{settings.ingest_interpreter_rtmp_port + 1}/live/" in page
            # Said in words ("Reported by … worker, 0.4 s ago"), the encoder node's id in a title.
            assert f'title="{local["node"]}">Reported by ' in page
            encoders.press("end")
            # Ended: the encoder node stops publishing and the web node shows nothing soon.
            deadline = time.monotonic() + 12
            while (
                time.monotonic() < deadline and web.get(f"{control}/health.json").json()["health"]
            ):
                time.sleep(0.5)
            assert web.get(f"{control}/health.json").json()["health"] is None
        finally:
            web.close()
            server.should_exit = True
            thread.join(timeout=30)
            database.dispose()
    assert ffmpeg_children() == []
