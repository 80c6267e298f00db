"""Real servers for presence load tests: `summitcast serve` and a private redis-server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from summitcast.loadtest.client import SimulatedLocation
from summitcast.services import locations
from summitcast.services.demo import seed_demo
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from tests.e2e.conftest import free_port

SLUG = "demo-summit"
# The app key of the servers these tests run: seeded locations' secrets are sealed under it.
SERVE_KEY = "loadtest-only-secret-" + "x" * 32


def seed(database_url: str, count: int) -> list[SimulatedLocation]:
    """The demo summit and ``count`` approved locations in it (migrated first)."""
    database = Database(database_url)
    try:
        database.upgrade()
        with database.session() as db:
            summit = seed_demo(db, start=datetime.now(UTC).date()).summit
            inputs = [
                locations.LocationInput(label=f"L{i}", country=("DE", "KE", "BR")[i % 3])
                for i in range(count)
            ]
            made = locations.register_locations_bulk(
                db, summit, inputs, links=LinkSecrets(SERVE_KEY)
            )
    finally:
        database.dispose()
    return [SimulatedLocation(m.location_id, m.secret) for m in made]


@dataclass
class Server:
    """A running `summitcast serve` process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor), or [] with one worker."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return []
        # uvicorn's workers are multiprocessing spawns; the resource tracker is not one.
        return [pid for pid in pids if b"spawn_main" in _cmdline(pid)]

    def figures_total(self) -> int:
        """The online total on /live/s/demo-summit/figures.json, on a fresh connection."""
        response = httpx.get(f"{self.base_url}/live/s/{SLUG}/figures.json", timeout=5)
        response.raise_for_status()
        return int(response.json()["total"])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def socket_count(pid: int) -> int:
    """How many sockets a process holds."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


@contextmanager
def serve(env: dict[str, str], tmp: Path, *, workers: int = 1) -> Iterator[Server]:
    """Run `summitcast serve` with ``env`` on a free port until the block ends."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "SUMMITCAST_JOB_WORKERS": "false"}
    full_env["SUMMITCAST_SECRET_KEY"] = SERVE_KEY
    full_env |= {"SUMMITCAST_BROADCAST_WORKERS": "false", **env}
    argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(log.read_text())
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # With several workers each must be up before load arrives.
        while workers > 1 and len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        yield server
    finally:
        workers = server.worker_pids()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            # A killed supervisor leaves its workers behind: nothing may outlive the test.
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@dataclass
class RedisServer:
    """A redis-server of the test's own (never the machine's shared one)."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (no persistence: a restart loses everything, the harshest case)."""
        exe = shutil.which("redis-server")
        assert exe is not None
        argv = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it at once (SIGKILL: the way a crash looks to its clients)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def own_postgres() -> Iterator[str]:
    """A PostgreSQL database of this test's own (several workers need a real server)."""
    from tests.conftest import scratch_postgres

    with scratch_postgres("summitcast_load") as url:
        yield url


def presence_env(database_url: str, redis_url: str, *, interval_s: float) -> dict[str, str]:
    """Settings of a short-interval, Redis-backed server for reliability tests."""
    return {
        "SUMMITCAST_DATABASE_URL": database_url,
        "SUMMITCAST_REDIS_URL": redis_url,
        "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(interval_s),
        # Long enough for a beat plus its latency on a loaded 2-core machine.
        "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(interval_s * 3),
        "SUMMITCAST_PRESENCE_SAMPLE_INTERVAL_S": "5",
    }
