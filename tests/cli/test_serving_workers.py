"""`summitcast serve --workers 2`: a socket per worker, an even split, the backlog cap said."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import resource
import time
from pathlib import Path

import pytest

from summitcast.cli.serving import backlog_cap, log_backlog_cap, raise_file_limit
from summitcast.loadtest.split import larger_share, listeners, per_process
from tests.loadtest.servers import serve

SOCKETS = 2_000
# With a fair hash each socket lands on either worker with p = 1/2: the larger share of
# 2,000 has a standard deviation of 1.1 points, so 55 % is 4.5 of them (a chance of
# ~1 in 150,000). The shared accept queue of uvicorn's own workers gave 58/42.
MOST = 0.55


async def _open_screens(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` presence sockets, each upgraded and greeted; kept open."""
    gate = asyncio.Semaphore(100)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /live/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            assert head.startswith(b"HTTP/1.1 101")
            hello = await asyncio.wait_for(reader.read(200), 60)
            assert b'"hello"' in hello
            return writer

    return await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.e2e
def test_two_workers_each_listen_and_split_2000_sockets_evenly(tmp_path: Path) -> None:
    env = {
        "SUMMITCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SUMMITCAST_DATA_DIR": str(tmp_path),
    }
    with serve(env, tmp_path, workers=2) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        workers = server.worker_pids()
        deadline = time.monotonic() + 60
        while list(listeners(port, workers).values()) != [1, 1] and time.monotonic() < deadline:
            time.sleep(0.2)  # a worker listens once its app has started
        listening = listeners(port, [server.process.pid, *workers])

        async def scenario() -> dict[int, int]:
            writers = await _open_screens(port, SOCKETS)
            split = per_process(port, workers)
            for writer in writers:
                writer.close()
            return split

        split = asyncio.run(scenario())
    log = server.log.read_text()

    assert listening == {server.process.pid: 0, workers[0]: 1, workers[1]: 1}
    assert sum(split.values()) == SOCKETS
    assert larger_share(split.values()) <= MOST, split
    assert "SO_REUSEPORT" in log
    if backlog_cap(8192) is not None:  # 4,096 on the project's machine
        assert "backlog of 8192 is capped by the kernel" in log


@pytest.mark.unit
def test_backlog_cap_is_logged_only_when_the_kernel_cuts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")

    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        log_backlog_cap(8192, somaxconn)
        log_backlog_cap(2048, somaxconn)
        log_backlog_cap(8192, tmp_path / "missing")

    assert [r.getMessage() for r in caplog.records] == [
        "The listen backlog of 8192 is capped by the kernel at 4096 (net.core.somaxconn): "
        "a herd of reconnecting screens waits on SYN retries; raise it with "
        "`sysctl -w net.core.somaxconn=8192`."
    ]


@pytest.mark.unit
def test_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    try:
        raised = raise_file_limit()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert raised == hard
