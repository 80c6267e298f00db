"""`summitcast demo` as a new user runs it: a server on a printed URL with the demo programme."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_prints_url_and_serves_three_sessions(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SUMMITCAST_DATA_DIR": str(tmp_path / "demo"), "PYTHONUNBUFFERED": "1"}
    env.pop("SUMMITCAST_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "summitcast.cli",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"Public programme:\s+(http://\S+)", line)
            if match:
                url = match.group(1)
            if "Producer login:" in line:
                break
        assert url, "".join(lines)
        page = None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert page is not None
        assert page.status_code == 200
        sessions = re.findall(
            r'<article class="card session">\s*<h3><a [^>]+>([^<]+)</a>', page.text
        )
        assert sessions == ["Opening evening", "Voices of the regions", "Closing session"]
        assert "Organiser login:" in "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
