"""Ctrl-C on a broadcasting `summitcast demo` ends it, and every ffmpeg it ran, within seconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.installed import clean_env, script
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

# Measured on a 2-core machine: ~20 s before the supervisors stopped restarting during a
# shutdown (the encoder came back and was waited for), ~1.5 s after.
STOP_WITHIN_S = 8.0


def descendants(pid: int) -> list[int]:
    """Every live process below pid, whatever its process group (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":  # a zombie has exited already
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids that still run."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


def listener_ports() -> dict[str, str]:
    """Ingest and green-room ports in a random block of a thousand, apart from other servers."""
    base = random.randrange(20_000, 60_000, 1_000)
    offsets = {
        "INGEST_RTMP_PORT": 0,
        "INGEST_SRT_PORT": 100,
        "INGEST_INTERPRETER_RTMP_PORT": 200,
        "INGEST_INTERPRETER_SRT_PORT": 300,
        "GREENROOM_RTMP_PORT": 400,
        "GREENROOM_SRT_PORT": 500,
    }
    ports = {f"SUMMITCAST_{name}": str(base + offset) for name, offset in offsets.items()}
    return ports | {"SUMMITCAST_BROADCAST_MAX_SESSIONS": "2", "SUMMITCAST_GREENROOM_MAX_FEEDS": "2"}


def _wait_for(check: object, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _serving(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_ctrl_c_stops_a_broadcasting_demo_and_its_ffmpeg_within_seconds(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "demo.log"
    env = clean_env(SUMMITCAST_BROADCAST_FPS="10", **listener_ports())
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [script(), "demo", "--port", str(port), "--data-dir", str(data)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the group a terminal's Ctrl-C goes to
        )
    children: list[int] = []
    try:
        _wait_for(lambda: _serving(f"http://127.0.0.1:{port}"), 300, "the server", log)
        # On air: the encoder has written segments, and the listeners are up.
        _wait_for(lambda: any((data / "hls").rglob("seg_*")), 60, "the first segments", log)
        children = descendants(demo.pid)
        assert len(children) >= 3, children

        began = time.monotonic()
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
        took = time.monotonic() - began
        time.sleep(0.2)  # the last children's exits reach /proc

        assert took < STOP_WITHIN_S, log.read_text()[-3000:]
        assert alive(children) == []
        assert " restart " not in log.read_text().split("Shutting down", 1)[-1]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for pid in alive(children):
            os.kill(pid, signal.SIGKILL)
