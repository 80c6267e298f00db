"""One supervised program of a cluster: its own process group, its log, its readiness probe."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from summitcast.cluster.commands import Command, postgres_ready
from summitcast.deploy.topology import Endpoint
from summitcast.errors import SummitcastError

POLL_S = 0.1


class ClusterError(SummitcastError):
    """A role of the cluster did not start, or did not come up in time."""


@dataclass(frozen=True)
class Probe:
    """How to tell that a role serves: an HTTP answer, pg_isready, or a Redis PONG."""

    kind: str  # "http", "postgres" or "redis"
    address: Endpoint
    path: str = "/"
    # HTTP: any status below this is an answer (nginx's own 404 counts; 502 does not).
    below: int = 500

    def check(self) -> bool:
        """True when the role answers now."""
        if self.kind == "postgres":
            argv = list(postgres_ready(self.address).argv)
            return subprocess.run(argv, check=False, timeout=10).returncode == 0
        if self.kind == "redis":
            return _redis_pong(self.address)
        return _http_status(f"http://{self.address.host}:{self.address.port}{self.path}") in range(
            100, self.below
        )


def _http_status(url: str) -> int:
    """The status of a GET (0 when nothing answered)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our http URL  # nosec B310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return 0


def _redis_pong(address: Endpoint) -> bool:
    """PING in Redis's inline protocol; True on +PONG."""
    try:
        with socket.create_connection((address.host, address.port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Supervised:
    """A program run in its own session (process group), stopped by signalling the group."""

    def __init__(self, name: str, command: Command, probe: Probe | None, log: Path) -> None:
        self.name = name
        self.command = command
        self.probe = probe
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the program itself (the group's leader) is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the program; output appended to its log."""
        if self.running:
            raise ClusterError(f"{self.name} is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n$ {self.command.shell()}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.command.argv,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.command.environment()},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own group: a kill reaches its workers too, and Ctrl-C in a terminal
                # reaches only the harness, which then stops everyone in order.
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the probe answers; ClusterError naming the role and its log's tail."""
        deadline = time.monotonic() + timeout_s
        while self.probe is not None and not self.probe.check():
            if not self.running:
                raise ClusterError(f"{self.name} exited before it served:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")
            time.sleep(POLL_S)

    def send(self, signum: int) -> None:
        """Send signum to the whole process group (SIGKILL: to every descendant too)."""
        if self.process is None:
            return
        # ffmpeg runs in sessions of its own (media/supervisor.py), out of the group. A
        # machine that dies takes them with it, as systemd's cgroup kill does: so does a
        # SIGKILL here. Listed first: once their parent is dead they belong to init.
        others = _descendants(self.process.pid) if signum == signal.SIGKILL else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
        for pid in others:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the whole group and wait until every process of it has gone."""
        self.send(signum)
        self._reap(timeout_s=10.0)

    def stop(self, grace_s: float = 10.0, signum: int = signal.SIGTERM) -> None:
        """signum to the group, SIGKILL to whatever is left of it after grace_s."""
        if self.process is None:
            return
        self.send(signum)
        if not self._reap(timeout_s=grace_s):
            self.send(signal.SIGKILL)
            self._reap(timeout_s=10.0)

    def _reap(self, timeout_s: float) -> bool:
        """Wait for the leader and then for the rest of its group; True when all are gone."""
        process = self.process
        if process is None:
            return True
        deadline = time.monotonic() + timeout_s
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        # Workers outlive a SIGKILLed master (nginx's, uvicorn's): the group holds them.
        while _group_alive(process.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True

    def tail(self, lines: int = 40) -> str:
        """The last lines of the role's log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _descendants(root: int) -> list[int]:
    """Every process below root, by the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name is in parentheses and may hold spaces: read after it.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group pgid."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
