"""Run rendered nginx files for a test: each in its own process group, killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from summitcast.deploy.topology import Endpoint


def free_port(host: str) -> int:
    """A TCP port nobody listens on at host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class NginxProcess:
    """One nginx in the foreground (daemon off), started in a new session."""

    def __init__(self, nginx: str, prefix: Path, config: Path, listen: Endpoint) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.listen = listen
        self.log = (prefix / "stderr.log").open("wb")
        argv = [nginx, "-p", f"{prefix}/", "-e", "stderr", "-c", str(config), "-g", "daemon off;"]
        self.process = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until nginx answers at all (or it died: then its log in the failure)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                # Any status will do: an origin's /healthz is its app's, absent in tests (502).
                httpx.get(f"{self.listen.url}/healthz", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        log = (self.prefix / "stderr.log").read_text(errors="replace")
        raise AssertionError(f"nginx in {self.prefix} did not come up: {log}")

    def stop(self) -> None:
        """Kill the whole process group (master and workers) and reap the master."""
        if self.process.returncode is not None:
            return  # stopped already (a test killed it on purpose)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()
