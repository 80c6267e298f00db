"""kill -9 of the app under registration and upload load: every acknowledged write survives."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.load import KINDS, Load, drill_env, missing_writes, seed
from tests.faults.servers import serve, wait_until

pytestmark = pytest.mark.e2e

LOAD_S = 1.5  # of acknowledged writes before the kill


def test_no_acknowledged_write_is_lost_when_the_app_is_killed(tmp_path: Path) -> None:
    # On SQLite here; test_postgres_restart.py ends with the same kill on PostgreSQL.
    secret = secrets.token_urlsafe(48)
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'summitcast.db'}"
    tokens = seed(url, secret, invitations=2)
    env = drill_env(url, secret) | {"SUMMITCAST_DATA_DIR": str(data)}
    with serve(env, tmp_path) as server:
        load = Load(server.base_url, tokens)
        load.start()
        try:
            wait_until(
                lambda: all(k in load.tally.last_ok for k in KINDS),
                30,
                lambda: f"every kind of request answered: {load.tally.sample}",
            )
            time.sleep(LOAD_S)
            for pid in (server.process.pid, *server.worker_pids()):
                os.kill(pid, signal.SIGKILL)  # mid-request, mid-chunk
            server.process.wait(timeout=10)
            wait_until(lambda: load.tally.refused > 0, 10, "the clients saw the kill")
        finally:
            tally = load.finish()
    lost = missing_writes(url, data / "uploads", tally)
    # The same data served again: every upload resumes at or past its acknowledgement.
    with serve(env, tmp_path) as again:
        heads = {u: httpx.head(f"{again.base_url}{u}", timeout=20) for u in tally.acked}
    offsets = {upload: int(head.headers["upload-offset"]) for upload, head in heads.items()}

    assert tally.wrong == []
    assert lost == []
    assert all(offsets[u] >= offset for u, (_, offset) in tally.acked.items()), (offsets, tally)
    assert tally.registered
    assert tally.speakers
    assert any(offset > 0 for _, offset in tally.acked.values())
