"""The demo stays alive: its session loops past the end, and simulated locations fill the map."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from summitcast.services import accounts, broadcast
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit, User
from tests.e2e.broadcast_server import PRODUCER, ffmpeg_children, running_server
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def test_looping_session_plays_past_its_end_back_to_the_first_item(tmp_path: Path) -> None:
    with running_server(tmp_path) as b:
        database = b.app.state.database
        _loop(database, b.slug, b.session_id)
        b.press("start-now")
        seen: list[str] = []
        upcoming: dict[str, object] = {}

        def round_and_back() -> bool:
            view = b.on_air()
            title = view["on_air"]
            if isinstance(title, str) and (not seen or seen[-1] != title):
                seen.append(title)
                upcoming[title] = view["next"]
            return seen.count("Speech one") >= 2 and seen[-1] == "Speech two"

        # Three 2 s items: once round and into the second round within seconds.
        b.wait_for(round_and_back, 45, "the second round of the run of show")
        top = httpx.get(f"{b.base}/hls/{b.slug}/{b.session_id}/360p/index.m3u8").text
    assert seen[:5] == ["Speech one", "Speech two", "Speech three", "Speech one", "Speech two"]
    assert "Closing slate" not in seen
    assert upcoming["Speech three"] == "Speech one"  # "next" on pages and screens knows too
    assert "#EXT-X-ENDLIST" not in top  # the stream went on without a break
    assert ffmpeg_children() == []


def _loop(database: Database, slug: str, session_id: int) -> None:
    with database.session() as db:
        summit = db.query(Summit).filter_by(slug=slug).one()
        producer = db.query(User).filter_by(email=PRODUCER).one()
        actor = accounts.Actor(user_id=producer.id, is_admin=False)
        broadcast.set_loop(db, actor, summit, session_id, loop=True)


@contextmanager
def _demo(data: Path) -> Iterator[str]:
    """`summitcast demo` on a data folder and a free port, as a person runs it; its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("SUMMITCAST_DATABASE_URL", "SUMMITCAST_REDIS_URL", "SUMMITCAST_DATA_DIR"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "summitcast.cli", "demo", "--port", str(port)]
    log = (data.parent / f"{data.name}-{port}.log").open("w")
    # Output to a file, not a pipe nobody reads: a full pipe would stall the server.
    proc = subprocess.Popen(
        [*argv, "--data-dir", str(data)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert proc.poll() is None, Path(log.name).read_text()
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _until(check: Any, timeout_s: float) -> Any:
    """Poll check() until it returns something true; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s")


def _on_air(base: str) -> dict[str, Any]:
    watch = httpx.get(f"{base}/s/demo-summit/watch", timeout=10).text
    url = re.search(r"(/s/demo-summit/sessions/\d+/on-air\.json)", watch)
    assert url, watch
    view: dict[str, Any] = httpx.get(f"{base}{url.group(1)}", timeout=10).json()
    return view


def _online(base: str) -> int:
    figures = httpx.get(f"{base}/live/s/demo-summit/figures.json", timeout=10).json()
    total: int = figures["total"]
    return total


def test_demo_fills_the_live_map_and_comes_back_on_air_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    with _demo(data) as base:
        online = _until(lambda: _online(base), 60)
        figures = httpx.get(f"{base}/live/s/demo-summit/figures.json", timeout=10).json()
        first = _on_air(base)
    # As an older version left it: ended, not looping (or on its closing slate, the same).
    database = Database(f"sqlite:///{data / 'summitcast.db'}")
    with database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE broadcasts SET status = 'ended', loop = false"))
    database.dispose()

    with _demo(data) as base:
        again = _on_air(base)
        online_again = _until(lambda: _online(base), 60)

    assert 150 <= online <= 450
    assert figures["country_count"] >= 40
    assert figures["cities"], figures  # public city dots on the map
    for view in (first, again):
        assert (view["status"], view["live"]) == ("on_air", False)
        assert view["on_air"] not in (None, "Closing slate")
    assert online_again > 0
