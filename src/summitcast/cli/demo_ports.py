"""Listener ports of `summitcast demo`: a free block of its own, so demos can share a machine."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

from summitcast.config import INTERPRETER_PORTS_PER_SESSION

# The demo plays one looping session: two session slots and four green-room feeds are
# plenty, and keep a demo's block small (2 × 17 + 4 = 38 ports of each protocol).
DEMO_CAPS = {"broadcast_max_sessions": 2, "greenroom_max_feeds": 4}
LISTENER_SETTINGS = (
    "ingest_rtmp_port",
    "ingest_srt_port",
    "ingest_interpreter_rtmp_port",
    "ingest_interpreter_srt_port",
    "greenroom_rtmp_port",
    "greenroom_srt_port",
)
# Blocks lie below Linux's ephemeral range (32768-60999), where outgoing connections
# take their local ports, and above the well-known and common service ports.
FIRST_PORT = 10_000
LAST_PORT = 32_767

PortIsFree = Callable[[str, int, int], bool]  # (host, port, socket type) → free now


def port_is_free(host: str, port: int, kind: int) -> bool:
    """True when a TCP (SOCK_STREAM) or UDP (SOCK_DGRAM) socket can bind host:port now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def env_name(setting: str) -> str:
    """The environment variable of a setting."""
    return f"SUMMITCAST_{setting.upper()}"


def demo_listener_env(
    http_port: int,
    environ: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    is_free: PortIsFree = port_is_free,
) -> dict[str, str]:
    """SUMMITCAST_* listener settings for a demo on http_port, or {} when any is set already."""
    # Set by hand (an operator, a test): kept as given; Settings refuses overlaps.
    if any(env_name(name) in environ for name in LISTENER_SETTINGS):
        return {}
    caps = {name: int(environ.get(env_name(name), value)) for name, value in DEMO_CAPS.items()}
    sessions, feeds = caps["broadcast_max_sessions"], caps["greenroom_max_feeds"]
    interpreters = INTERPRETER_PORTS_PER_SESSION * sessions
    size = sessions + interpreters + feeds
    slots = (LAST_PORT + 1 - FIRST_PORT) // size
    # Derived from the HTTP port, which two demos on one machine cannot share, so that
    # demos on neighbouring ports take different blocks even before either listens (the
    # green room binds only when a feed opens); a block that is busy now is skipped.
    for step in range(slots):
        base = FIRST_PORT + (http_port + step) % slots * size
        ports = range(base, base + size)
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
        if all(is_free(host, port, kind) for port in ports for kind in kinds):
            break
    else:
        raise OSError(f"no {size} free listener ports in {FIRST_PORT}-{LAST_PORT} on {host}")
    # RTMP (TCP) and SRT (UDP) share numbers: one block serves both protocols.
    chosen = {
        "ingest_rtmp_port": base,
        "ingest_srt_port": base,
        "ingest_interpreter_rtmp_port": base + sessions,
        "ingest_interpreter_srt_port": base + sessions,
        "greenroom_rtmp_port": base + sessions + interpreters,
        "greenroom_srt_port": base + sessions + interpreters,
        **caps,
    }
    return {env_name(name): str(value) for name, value in chosen.items()}
