"""Private back-ends for fault drills: a PostgreSQL cluster and a redis-server of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.conftest import free_port
from tests.loadtest.servers import RedisServer, Server

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def missing(what: str) -> None:
    """Skip on a developer's machine, fail in CI (CI must run the drills)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed; CI must run the fault drills", pytrace=False)
    pytest.skip(f"{what} is not installed")


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root; the cluster belongs to the postgres user then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the drill's own (the machine's shared one is never touched)."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        """The URL of its database `summitcast`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/summitcast"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        argv = [str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t", "30"]
        argv += ["-l", str(self.folder / "postgres.log"), "-o", options, *args]
        subprocess.run(_as_postgres(argv), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        self._ctl("start")

    def stop(self) -> None:
        """Stop it the way an operator restarting it does (fast: sessions are cut)."""
        self._ctl("-m", "fast", "stop")

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        """The rows of one query, on a connection of its own."""
        with psycopg.connect(self.url) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh cluster on a free port with a database `summitcast`, removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        missing(f"PostgreSQL 15 ({PG_BIN / 'initdb'})")
    folder = Path(tempfile.mkdtemp(prefix="summitcast-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PrivatePostgres(folder, free_port())
    try:
        initdb = [str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust"]
        initdb += ["-U", "postgres", "-E", "UTF8", "-N", "--no-instructions"]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
        server.start()
        admin = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE summitcast")
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port (no persistence), stopped afterwards."""
    if shutil.which("redis-server") is None:
        missing("redis-server")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(check: object, timeout_s: float, what: object) -> None:
    """Poll check() every 50 ms until it is true, else fail naming what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what() if callable(what) else what}")


@contextmanager
def serve(env: dict[str, str], tmp: Path, *, ready_s: float = 180) -> Iterator[Server]:
    """`summitcast serve` (one worker) with env on a free port, ready when this yields."""
    # Its own start-up wait: on a loaded 2-core machine the app's start-up (migrations,
    # the city index) has taken over a minute, and a drill must not start before it.
    port = free_port()
    log = tmp / f"serve-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "SUMMITCAST_BROADCAST_WORKERS": "false"}
    argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env | env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not serving after {ready_s} s"
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
