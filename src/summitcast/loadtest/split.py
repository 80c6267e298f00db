"""Which server process holds which connections: read from /proc, nothing asked of the server.

`summitcast serve --workers N` gives each worker its own SO_REUSEPORT socket
(cli/serving.py); these count, per worker, the listening sockets and the established
connections on the server's port, so a test or a benchmark can see how the kernel split
them without the server saying anything about itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# /proc/net/tcp states (include/net/tcp_states.h)
ESTABLISHED = "01"
LISTEN = "0A"


def _sockets_on_port(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets (IPv4 and IPv6) in ``state`` whose local port is ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets a process holds open."""
    found: set[str] = set()
    fds = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return found
    for fd in entries:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def per_process(port: int, pids: Iterable[int], state: str = ESTABLISHED) -> dict[int, int]:
    """How many sockets on ``port`` in ``state`` each process holds."""
    on_port = _sockets_on_port(port, state)
    return {pid: len(_socket_inodes(pid) & on_port) for pid in pids}


def listeners(port: int, pids: Iterable[int]) -> dict[int, int]:
    """How many listening sockets on ``port`` each process holds."""
    return per_process(port, pids, LISTEN)


def larger_share(counts: Iterable[int]) -> float:
    """The largest part's share of the whole (0.5 is an even split of two)."""
    values = list(counts)
    total = sum(values)
    return max(values) / total if total else 0.0
