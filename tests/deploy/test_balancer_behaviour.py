"""A real balancer nginx in front of stand-in nodes: routes, forwarded headers, WebSockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from summitcast.deploy.render import render, write
from summitcast.deploy.topology import Topology
from tests.deploy.conftest import make_topology
from tests.deploy.nginx_run import NginxProcess, free_port

pytestmark = pytest.mark.e2e

# Addresses of this test only: the cluster harness uses 127.0.0.x.
BALANCER, PAGES, BROADCAST, EDGE = (
    "127.0.16.10",
    ("127.0.16.11", "127.0.16.12"),
    "127.0.16.21",
    "127.0.16.31",
)


def identity(name: str, path: str, headers: dict[str, str], body_bytes: int = 0) -> bytes:
    """What a stand-in node answers: who it is and what it was sent."""
    forwarded = {k: headers.get(k, "") for k in ("X-Forwarded-For", "X-Forwarded-Proto", "Host")}
    return json.dumps({"node": name, "path": path, "body": body_bytes, **forwarded}).encode()


def http_node(name: str, host: str, port: int) -> ThreadingHTTPServer:
    """A plain HTTP stand-in (broadcast node, edge) answering every method with identity()."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = identity(name, self.path, dict(self.headers), length)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = answer  # noqa: N815 - http.server's names

        def log_message(self, *args: object) -> None:
            pass  # quiet

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def page_node(name: str, host: str, port: int) -> Server:
    """A page-node stand-in: WebSockets echo with its name, plain requests get identity()."""

    def plain(connection: ServerConnection, request: object) -> object:
        headers = dict(request.headers.raw_items())  # type: ignore[attr-defined]
        if headers.get("Upgrade", "").lower() == "websocket":
            return None
        return connection.respond(HTTPStatus.OK, identity(name, request.path, headers).decode())  # type: ignore[attr-defined]

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(f"{name}:{message}")

    server = serve(echo, host, port, process_request=plain)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Stack:
    """The running balancer and its stand-in nodes."""

    topology: Topology
    url: str
    pages: list[Server]


@pytest.fixture
def stack(tmp_path: Path, nginx: str) -> Iterator[Stack]:
    """The balancer in front of two page nodes, a broadcast node and an edge."""
    ports = {host: free_port(host) for host in (BALANCER, *PAGES, BROADCAST, EDGE)}
    topology = make_topology(
        tmp_path,
        balancer=f"{BALANCER}:{ports[BALANCER]}",
        page_nodes=[{"name": f"p{i + 1}", "app": f"{h}:{ports[h]}"} for i, h in enumerate(PAGES)],
        broadcast_nodes=[
            {"name": "a", "app": f"{BROADCAST}:{ports[BROADCAST]}", "origin": f"{BROADCAST}:1"}
        ],
        edges=[{"name": "e1", "listen": f"{EDGE}:{ports[EDGE]}"}],
    )
    write(render(topology), tmp_path / "out")
    pages = [page_node(f"p{i + 1}", h, ports[h]) for i, h in enumerate(PAGES)]
    others = [http_node("a", BROADCAST, ports[BROADCAST]), http_node("e1", EDGE, ports[EDGE])]
    balancer = NginxProcess(
        nginx,
        topology.nginx_prefix("balancer"),
        tmp_path / "out/nginx/balancer.conf",
        topology.balancer,
    )
    try:
        balancer.wait_ready()
        yield Stack(topology, topology.balancer.url, pages)
    finally:
        balancer.stop()
        for page in pages:
            page.shutdown()
        for other in others:
            other.shutdown()
            other.server_close()


def test_balancer_routes_each_kind_of_request(stack: Stack) -> None:
    def node(method: str, path: str, **kwargs: object) -> str:
        answer = httpx.request(method, stack.url + path, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 200, (path, answer.text)
        return str(answer.json()["node"])

    assert {node("GET", "/s/demo/watch") for _ in range(4)} == {"p1", "p2"}  # round-robin
    assert node("GET", "/hls/demo/7/master.m3u8") == "e1"
    assert node("POST", "/speak/tok123/live/sessions", json={}) == "a"
    assert node("GET", "/backstage/s/demo/sessions/7/control/greenroom.json") == "a"
    assert node("GET", "/backstage/s/demo/sessions/7/control/greenroom/3/preview.jpg") == "a"


def test_balancer_sets_forwarded_headers(stack: Stack) -> None:
    seen = httpx.get(stack.url + "/", headers={"X-Forwarded-For": "198.51.100.7"}).json()

    # The client's own claim stays on the left; the balancer appends the address it saw.
    assert seen["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["Host"] == stack.topology.balancer.address


def test_balancer_takes_an_upload_chunk_and_no_more_than_the_app_would(stack: Stack) -> None:
    # The size limit is the server's, the same for every route; this one has a stand-in
    # that reads bodies (the page nodes' stand-in speaks WebSocket).
    url = stack.url + "/speak/tok/live/sessions"
    chunk = b"x" * (8 * 1024 * 1024)

    answer = httpx.post(url, content=chunk, timeout=30)
    too_big = httpx.post(url, content=b"x" * (64 * 1024 * 1024), timeout=30)

    assert answer.status_code == 200
    assert answer.json()["body"] == len(chunk)
    assert too_big.status_code == 413


def test_balancer_upgrades_websockets_to_page_nodes(stack: Stack) -> None:
    ws_url = stack.url.replace("http://", "ws://")

    for path in ("/live/ws", "/live/s/demo/public", "/backstage/s/demo/live"):
        with connect(ws_url + path, open_timeout=5) as socket:
            socket.send("beat")
            assert socket.recv(timeout=5) in ("p1:beat", "p2:beat")


def test_balancer_skips_a_dead_page_node(stack: Stack) -> None:
    stack.pages[0].shutdown()

    nodes = [httpx.get(stack.url + "/").json()["node"] for _ in range(6)]

    assert nodes == ["p2"] * 6
