"""`summitcast serve` becomes a small uvicorn master whose logs hold no client address."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from summitcast.cli.serving import QuietConnections
from tests.loadtest.servers import SLUG, seed, serve

# An IPv4 address followed by a port, as uvicorn writes a client.
ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+")


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.unit
def test_quiet_connections_drops_per_connection_records_only() -> None:
    quiet = QuietConnections()

    kept = [
        quiet.filter(_record('%s - "WebSocket %s" [accepted]', "127.0.0.2:5000", "/live/ws")),
        quiet.filter(_record("connection open")),
        quiet.filter(_record("connection closed")),
        quiet.filter(_record("Uvicorn running on %s", "http://127.0.0.1:8000")),
        quiet.filter(_record("Started server process [%d]", 42)),
    ]

    assert kept == [False, False, False, True, True]


@pytest.mark.e2e
def test_serve_logs_no_client_address_and_master_stays_small(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    located = seed(url, 2)
    env = {"SUMMITCAST_DATABASE_URL": url, "SUMMITCAST_DATA_DIR": str(tmp_path)}

    async def visit(base: str) -> str:
        ws_url = base.replace("http://", "ws://") + "/live/ws"
        # From 127.0.0.2, so that its address cannot be mistaken for the server's.
        async with connect(ws_url, compression=None, local_addr=("127.0.0.2", 0)) as ws:
            return str(await ws.recv())

    with serve(env, tmp_path, workers=2) as server:
        hello = asyncio.run(visit(server.base_url))
        total = server.figures_total()
        master = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        master_rss_kib = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        )
    log = server.log.read_text()

    assert '"hello"' in hello
    assert (len(located), total, SLUG) == (2, 0, "demo-summit")
    assert b"summitcast.cli.serving" in master  # same pid, now the slim master
    assert master_rss_kib < 80 * 1024  # the full CLI weighed ~140 MiB
    assert "Uvicorn running" in log
    assert "127.0.0.2" not in log
    assert [a for a in ADDRESS.findall(log) if not a.startswith("127.0.0.1:")] == []
    assert "WebSocket" not in log
