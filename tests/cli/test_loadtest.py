"""`summitcast locations bulk-create` and `summitcast loadtest presence` against the demo server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "summitcast.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_loadtest_presence_against_demo_server_counts_every_location(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SUMMITCAST_DATA_DIR": str(data)}
    # Only the load tool's locations: the demo's simulated audience would add its own.
    env["SUMMITCAST_DEMO_AUDIENCE"] = "false"
    for name in ("SUMMITCAST_DATABASE_URL", "SUMMITCAST_REDIS_URL"):
        env.pop(name, None)
    _cli("demo", "--no-serve", "--data-dir", str(data), env=env)
    secrets_file = tmp_path / "secrets.jsonl"
    made = _cli(
        "locations", "bulk-create", "--summit", "demo-summit", "--count", "50",
        "--countries", "DE,KE,BR", "--out", str(secrets_file), env=env,
    )  # fmt: skip
    assert "Registered 50 locations" in made
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"

    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "summitcast.cli",
            "demo",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        report = tmp_path / "report.json"
        out = _cli(
            "loadtest", "presence", "--secrets", str(secrets_file), "--locations", "50",
            "--duration", "4", "--url", base, "--ramp", "0.5", "--sample-every", "0.5",
            "--processes", "2", "--json", str(report), env=env, timeout=60,
        )  # fmt: skip
        result = json.loads(report.read_text())
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert "latency ms" in out
    # Each screen's first beat at once; its second at a random phase of the 10 s interval
    # may fall inside the 4 s too.
    assert 50 <= result["heartbeats_acked"] <= 100
    assert (result["lost"], result["never_online"]) == (0, 0)
    assert (result["processes"], result["refused"], result["connect_errors"]) == (2, {}, 0)
    assert max(s["server"] or 0 for s in result["samples"]) == 50
    assert result["latency_ms"]["p99"] is not None
