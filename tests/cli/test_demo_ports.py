"""Several demos on one machine: each takes a listener block of its own, derived from --port."""

from __future__ import annotations

import contextlib
import socket

import pytest

from summitcast.cli.demo_ports import demo_listener_env
from summitcast.config import Settings

pytestmark = pytest.mark.unit


def _settings(env: dict[str, str]) -> Settings:
    values = {k.removeprefix("SUMMITCAST_").lower(): int(v) for k, v in env.items()}
    return Settings(**values)  # type: ignore[arg-type]


def _ports(settings: Settings, protocol: str) -> set[int]:
    return {
        port
        for kind, ports in settings.port_ranges().values()
        if kind == protocol
        for port in ports
    }


def test_two_demos_on_neighbouring_ports_take_disjoint_listener_blocks() -> None:
    first = _settings(demo_listener_env(8000, {}, is_free=lambda *_: True))
    second = _settings(demo_listener_env(8001, {}, is_free=lambda *_: True))

    for protocol in ("tcp", "udp"):
        assert _ports(first, protocol).isdisjoint(_ports(second, protocol))
    assert first.ingest_rtmp_port != 1935
    assert all(10_000 <= p <= 32_767 for p in _ports(first, "tcp") | _ports(second, "udp"))
    assert (first.broadcast_max_sessions, first.greenroom_max_feeds) == (2, 4)


def test_a_block_with_a_port_taken_now_is_skipped() -> None:
    wanted = _settings(demo_listener_env(8000, {}, is_free=lambda *_: True))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        # Held by us, or by someone else already: either way the demo must avoid it.
        with contextlib.suppress(OSError):
            taken.bind(("127.0.0.1", wanted.greenroom_srt_port))
        chosen = _settings(demo_listener_env(8000, {}))

    assert wanted.greenroom_srt_port not in _ports(chosen, "udp")
    assert chosen.ingest_rtmp_port != wanted.ingest_rtmp_port


def test_the_same_http_port_with_its_block_busy_takes_another() -> None:
    wanted = _settings(demo_listener_env(8000, {}, is_free=lambda *_: True))
    busy = _ports(wanted, "tcp")

    env = demo_listener_env(8000, {}, is_free=lambda _host, port, _kind: port not in busy)

    assert _ports(_settings(env), "tcp").isdisjoint(busy)


def test_ports_set_explicitly_are_kept() -> None:
    explicit = {"SUMMITCAST_INGEST_RTMP_PORT": "41935"}

    assert demo_listener_env(8000, explicit, is_free=lambda *_: True) == {}


def test_caps_set_explicitly_size_the_block() -> None:
    env = demo_listener_env(
        8000, {"SUMMITCAST_BROADCAST_MAX_SESSIONS": "1"}, is_free=lambda *_: True
    )

    settings = _settings(env)
    assert settings.broadcast_max_sessions == 1
    assert settings.ingest_interpreter_rtmp_port == settings.ingest_rtmp_port + 1
    assert settings.greenroom_rtmp_port == settings.ingest_rtmp_port + 17
