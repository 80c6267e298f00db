"""The small topology on loopback: nodes behind the balancer, one killed, back-ends restarted.

One cluster for the module (bringing it up is the expensive part) and one crowd of
screens held against it from the second test on; the tests run in file order and each
leaves the cluster whole for the next.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect

from summitcast.cluster.harness import SMALL_NODE_ENV, Cluster
from tests.cluster.screens import SLUG, Screens, Traffic, heartbeat, seed, total, wait_for
from tests.cluster.small import small_cluster

pytestmark = pytest.mark.e2e

LOCATIONS = 300
INTERVAL_S = 2.0  # heartbeat interval of the cluster's nodes
NODE_ENV = SMALL_NODE_ENV | {
    "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(INTERVAL_S),
    # A killed node's screens must be counted by the heartbeats they send elsewhere, not by
    # a long timeout: 3.5 intervals, the ratio of the defaults (10 s and 35 s).
    "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(3.5 * INTERVAL_S),
    "SUMMITCAST_PRESENCE_SWEEP_INTERVAL_S": "0.5",
    # One client registers dozens of places here; the limit is tested elsewhere.
    "SUMMITCAST_REGISTRATIONS_PER_HOUR": "1000000",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The small topology, up, for every test of this module."""
    with small_cluster("summitcast-cluster-", NODE_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def crowd(cluster: Cluster) -> list:  # type: ignore[type-arg]
    """LOCATIONS approved locations of the demo summit, and one more for probes."""
    return seed(cluster.database_url, cluster.secret_key, LOCATIONS + 1)


@pytest.fixture(scope="module")
def screens(cluster: Cluster, crowd: list) -> Iterator[Screens]:  # type: ignore[type-arg]
    """The crowd's screens connected through the balancer, all online."""
    held = Screens(cluster.topology.base_url, crowd[:LOCATIONS], ramp_s=INTERVAL_S)
    held.start()
    try:
        wait_for(
            lambda: held.counter("online") == LOCATIONS,
            60,
            lambda: f"every screen online: {held.latest}",
        )
        yield held
    finally:
        held.stop()


def test_pages_load_through_the_balancer_and_every_node_is_healthy(cluster: Cluster) -> None:
    urls = cluster.urls()
    apps = [url for role, url in urls.items() if role.startswith(("page-", "broadcast-"))]

    health = {url: httpx.get(f"{url}/healthz", timeout=10) for url in apps}
    pages = [httpx.get(f"{urls['balancer']}{path}", timeout=10) for path in ("/", "/login") * 2]

    assert {url: r.status_code for url, r in health.items()} == dict.fromkeys(apps, 200)
    assert [r.status_code for r in pages] == [200] * 4
    assert all(r.json()["status"] == "ok" for r in health.values())


def _upstreams(log: Path, uri: str) -> set[str]:
    """The upstream addresses the balancer's access log names for uri."""
    # The balancer's format: $msec $status $request_method $uri $upstream_addr $request_time
    rows = [line.split() for line in log.read_text().splitlines()]
    return {address for row in rows if row[3] == uri for address in row[4].split(", ")}


def test_the_balancer_sends_each_path_to_its_tier(cluster: Cluster) -> None:
    t = cluster.topology
    routes = {
        f"/s/{SLUG}": {n.app.address for n in t.page_nodes},
        "/hls/no-summit/1/master.m3u8": {e.listen.address for e in t.edges},
        "/speak/no-token/live/sessions": {n.app.address for n in t.broadcast_nodes},
        "/backstage/s/x/sessions/1/control/greenroom": {n.app.address for n in t.broadcast_nodes},
    }
    log = cluster.nginx_prefix("balancer") / "access.log"

    with httpx.Client(base_url=t.base_url, timeout=10) as client:
        statuses = {uri: client.get(uri).status_code for uri in routes for _ in range(4)}
    wait_for(lambda: all(_upstreams(log, uri) for uri in routes), 5, "the access log flushed")

    assert all(status < 500 for status in statuses.values()), statuses
    assert {uri: _upstreams(log, uri) <= tier for uri, tier in routes.items()} == dict.fromkeys(
        routes, True
    ), {uri: _upstreams(log, uri) for uri in routes}
    # Round-robin: four page loads reach both page nodes.
    assert _upstreams(log, f"/s/{SLUG}") == routes[f"/s/{SLUG}"]


def test_every_location_is_counted_through_the_balancer(cluster: Cluster, screens: Screens) -> None:
    urls = cluster.urls()

    # Screens went to both page nodes (round-robin); each node reads the shared count.
    seen = {role: total(urls[role]) for role in ("page-p1", "page-p2", "balancer")}

    assert seen == dict.fromkeys(seen, LOCATIONS)
    assert screens.counter("lost") == 0


def _public_pushes(url: str, totals: list[int], stop: threading.Event) -> None:
    """Record the totals a public figures WebSocket pushes until stop is set."""

    async def watch() -> None:
        ws_url = url.replace("http://", "ws://", 1) + f"/live/s/{SLUG}/public"
        async with connect(ws_url, compression=None, ping_interval=None) as socket:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(socket.recv(), 0.2)
                except TimeoutError:
                    continue
                totals.append(int(json.loads(text).get("total", 0)))

    asyncio.run(watch())


def test_a_killed_page_node_loses_no_location_and_counts_none_twice(
    cluster: Cluster,
    screens: Screens,
    crowd: list,  # type: ignore[type-arg]
) -> None:
    urls = cluster.urls()
    probe = crowd[LOCATIONS]
    pushes: list[int] = []
    stop = threading.Event()
    dashboard = threading.Thread(target=_public_pushes, args=(urls["page-p2"], pushes, stop))
    dashboard.start()
    reconnects_before = screens.counter("reconnects")
    counts: list[int | None] = []

    try:
        cluster.kill("page-p1")
        killed_at = time.monotonic()
        back_s = wait_for(
            lambda: (
                screens.counter("reconnects") >= reconnects_before + LOCATIONS // 4
                and screens.counter("online") == LOCATIONS
            ),
            30,
            lambda: f"the killed node's screens online again: {screens.latest}",
        )
        # Longer than the heartbeat timeout: the moved screens count by their new beats.
        while time.monotonic() - killed_at < 3.5 * INTERVAL_S + 1:
            counts += [total(urls["page-p2"]), total(urls["balancer"])]
            time.sleep(0.25)
        with httpx.Client(base_url=urls["balancer"], timeout=10) as client:
            beat = heartbeat(
                client, probe, "newcomer-epoch", 0
            )  # a newcomer, seen on p2's dashboard
        wait_for(lambda: LOCATIONS + 1 in pushes, 10, lambda: f"p2's dashboard pushed {pushes}")
    finally:
        stop.set()
        dashboard.join(timeout=10)
    cluster.start("page-p1")
    again = total(urls["page-p1"])

    # Reconnected within two intervals (the clients report once a second: one tick more).
    assert back_s <= 2 * INTERVAL_S + 1.0, back_s
    assert counts == [LOCATIONS] * len(counts)  # never one missing, never one twice
    assert beat.status_code == 200
    assert again in (LOCATIONS, LOCATIONS + 1)  # + the probe until it times out
    assert screens.counter("lost") <= LOCATIONS  # in flight on the killed node at most


def test_redis_and_postgres_restarts_give_no_500_and_lose_no_registration(
    cluster: Cluster,
    screens: Screens,
    crowd: list,  # type: ignore[type-arg]
) -> None:
    urls = cluster.urls()
    traffic = Traffic(urls["balancer"], crowd[LOCATIONS])
    traffic.start()
    try:
        wait_for(lambda: len(traffic.tally.registered) >= 2, 30, "registrations before")
        cluster.restart_redis(down_s=1.0)
        redis_back_s = wait_for(
            lambda: total(urls["page-p2"]) == LOCATIONS + 1,  # the crowd and the probe
            30,
            lambda: f"presence rebuilt after Redis: {total(urls['page-p2'])}",
        )
        before_postgres = len(traffic.tally.registered)
        cluster.restart_postgres(down_s=2.0)  # registrations meet the outage
        wait_for(
            lambda: len(traffic.tally.registered) >= before_postgres + 2,
            30,
            lambda: f"registrations after PostgreSQL: {traffic.tally.sample}",
        )
        counted = total(urls["balancer"])
    finally:
        tally = traffic.finish()
    with psycopg.connect(cluster.database_url.replace("+psycopg", "", 1)) as conn:
        stored = {row[0] for row in conn.execute("SELECT public_id FROM locations")}

    # A brief 503 (with Retry-After) is allowed while a back-end is away; nothing else.
    assert tally.wrong == []
    assert set(tally.statuses) <= {200, 303, 503}, tally.sample
    assert tally.statuses[503] > 0  # the outages were seen, and answered as such
    assert [p for p in tally.registered if p not in stored] == []
    assert redis_back_s < 3 * INTERVAL_S
    assert counted == LOCATIONS + 1
    assert tally.refused == 0  # the balancer always answered
