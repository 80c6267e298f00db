"""Hostile requests to a real uvicorn server on PostgreSQL: 4xx every time, no traceback logged."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import scratch_postgres
from tests.e2e.app_server import app_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Request targets as they go on the wire (uvicorn decodes them, not an HTTP client).
TARGETS = [
    "/s/x%00y/live",
    "/s/demo-summit/sessions/9223372036854775808",
    "/s/demo-summit/speakers/2147483648",
    "/api/summits/x%00y/items/1",
    "/api/summits/demo-summit/items/18446744073709551616",
    "/photos/a%00.jpg",
    "/photos/" + "a" * 5000 + ".jpg",
    "/photos/" + "a" * 1000 + ".jpg",
    "/hls/demo-summit/1/" + "a" * 1000 + ".ts",
    "/hls/demo-summit/1/a%00.ts",
    "/hls/demo-summit/9223372036854775808/master.m3u8",
    "/l/%00",
    "/l/" + "%ff%fe" * 20,
    "/speak/x%00/uploads/y",
    "/s/demo-summit/schedule.ics?session=99999999999999999999",
    "/backstage/s/demo-summit/locations?q=a%00b",
    "/login?next=%0d%0aSet-Cookie:%20x=1",
]


def _status(base_url: str, request: bytes) -> int:
    """Send one raw HTTP/1.1 request and read the status code of its answer."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def _get(target: str) -> bytes:
    headers = "Host: x\r\nAccept: text/html\r\nConnection: close\r\n"
    return f"GET {target} HTTP/1.1\r\n{headers}\r\n".encode()


def test_hostile_requests_to_a_real_server_answer_4xx_without_tracebacks(tmp_path: Path) -> None:
    form = b"email=a%00b%40example.org&password=x&csrf_token=x"
    raw = [
        *(_get(target) for target in TARGETS),
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        + f"\r\nContent-Length: {len(form)}\r\nConnection: close\r\n\r\n".encode()
        + form,
        b"GET /a\x01b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  # refused by uvicorn
    ]
    with (
        scratch_postgres("summitcast_hostile") as database_url,
        app_server(tmp_path, {"SUMMITCAST_DATABASE_URL": database_url}) as server,
    ):
        statuses = [_status(server.base_url, request) for request in raw]
        log = server.log.read_text()

    assert [s for s in statuses if not 400 <= s < 500] == [], statuses
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log
