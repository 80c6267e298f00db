"""Scale-out of presence (issue 15): 1, 2 and 3 page nodes behind the balancer, same load per node.

For each size of --nodes the cluster harness (summitcast.cluster) starts a topology of its
own on loopback: PostgreSQL, Redis, the page nodes (`summitcast serve`, one worker each)
and the balancer. --per-node approved locations per node are seeded, and the presence
load tool (summitcast.loadtest.run) holds their screens through the balancer at the
nodes' heartbeat interval (default 10 s). Once every screen is online, the CPU of each
node's process group, of redis-server and of the balancer is read from /proc before and
after a steady window, as is the idle CPU of the same processes before any screen came.
Printed: server CPU per heartbeat at 2 and 3 nodes as a ratio of 1 node's (linear: within
10 %), Redis CPU per heartbeat, and where one Redis core ends (heartbeats/s, locations at
a 10 s interval; the share of a core at 100,000 and 300,000 locations).

    .venv/bin/python benchmarks/presence_scaleout.py --nodes 1,2,3 --per-node 2000 --duration 90
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _proc import group_cpu_s
from summitcast.cluster.harness import SMALL_NODE_ENV, Cluster
from summitcast.deploy.topology import BroadcastNode, Edge, Endpoint, PageNode, Topology
from summitcast.loadtest.client import SimulatedLocation
from summitcast.loadtest.run import LoadPlan, LoadTest
from summitcast.services import locations
from summitcast.services.demo import DEMO_SLUG, seed_demo
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database

COUNTRIES = ("DE", "KE", "BR", "IN", "NG", "US", "FR", "JP", "MX", "ZA", "GB", "ID")
# Addresses of our own, away from the harness's small topology (127.0.0.1x-4x), which
# other work on this machine may be running at the same time.
HOST = "127.0.0.15{}"
IDLE_S = 10.0  # the processes' CPU with no screen, subtracted to get the cost per heartbeat


class PresenceCluster(Cluster):
    """The harness without broadcast nodes, origins or edges.

    The topology still lists one broadcast node and one edge: the renderer writes every
    node into an nginx upstream, and nginx refuses an empty one ("no servers are inside
    upstream"). They are never started; nothing in this benchmark asks for them.
    """

    def role_names(self) -> list[str]:
        """PostgreSQL, Redis, the page nodes and the balancer."""
        skipped = ("broadcast-", "origin-", "edge-")
        return [role for role in super().role_names() if not role.startswith(skipped)]


def topology(nodes: int, root: Path) -> Topology:
    """nodes page nodes behind a balancer, with PostgreSQL and Redis of their own."""
    unused = HOST.format(9)
    return Topology(
        name=f"bench-presence-{nodes}",
        balancer=Endpoint(HOST.format(0), 8080),
        page_nodes=tuple(
            PageNode(f"p{i + 1}", Endpoint(HOST.format(i + 1), 8000)) for i in range(nodes)
        ),
        broadcast_nodes=(
            BroadcastNode("a", Endpoint(unused, 8000), Endpoint(unused, 8081), unused),
        ),
        edges=(Edge("e1", Endpoint(unused, 8080), cache_mb=16),),
        postgres=Endpoint(HOST.format(6), 5432),
        redis=Endpoint(HOST.format(7), 6379),
        base_url=f"http://{HOST.format(0)}:8080",
        root=root,
        # "auto": one worker per core with 32,768 connections each. At the loopback size (one
        # worker, 4,096 connections) the balancer holds ~2,040 screens (each is two
        # connections, client and node) and refuses the rest.
        nginx_workers=0,
        nginx_user="root" if os.geteuid() == 0 else "",
    )


def seed(database_url: str, secret_key: str, count: int) -> list[SimulatedLocation]:
    """The demo summit and count approved locations (a third public with a city)."""
    database = Database(database_url)
    try:
        with database.session() as db:
            summit = seed_demo(db, start=datetime.now(UTC).date()).summit
            inputs = [
                # As presence_load.py: each public location costs a second presence
                # update (its map cell) on every heartbeat.
                locations.LocationInput(
                    label=f"Bench {i}",
                    country=COUNTRIES[i % len(COUNTRIES)],
                    city="Berlin" if COUNTRIES[i % len(COUNTRIES)] == "DE" else "",
                    privacy_level="public" if i % 3 == 0 else "country",
                )
                for i in range(count)
            ]
            made = locations.register_locations_bulk(
                db, summit, inputs, links=LinkSecrets(secret_key)
            )
    finally:
        database.dispose()
    return [SimulatedLocation(m.location_id, m.secret) for m in made]


def established(address: Endpoint) -> int:
    """Established TCP connections whose local end is address (sockets a node holds)."""
    local = f"{_hex_ip(address.host)}:{address.port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "01":  # 01: ESTABLISHED
            count += 1
    return count


def _hex_ip(host: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (little-endian hex)."""
    return "".join(f"{int(part):02X}" for part in reversed(host.split(".")))


def cpu_now(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of each page node's group, Redis and the balancer."""
    roles = [r for r in cluster.roles if r.startswith("page-")] + ["redis", "balancer"]
    found = {}
    for role in roles:
        process = cluster.roles[role].process
        assert process is not None
        found[role] = group_cpu_s(process.pid)
    return found


def measure(nodes: int, args: argparse.Namespace) -> dict[str, object]:
    """One size: start it, idle, hold the screens, the CPU per heartbeat of each part."""
    work = Path(tempfile.mkdtemp(prefix=f"presence-scaleout-{nodes}-"))
    work.chmod(0o755)  # PostgreSQL runs as postgres and nginx's workers as root/nobody
    env = SMALL_NODE_ENV | {"SUMMITCAST_HEARTBEAT_INTERVAL_S": str(args.interval)}
    try:
        with PresenceCluster(topology(nodes, work / "root"), work, node_env=env) as cluster:
            crowd = seed(cluster.database_url, cluster.secret_key, nodes * args.per_node)
            time.sleep(2.0)
            idle_before = cpu_now(cluster)
            time.sleep(IDLE_S)
            idle = {k: (v - idle_before[k]) / IDLE_S for k, v in cpu_now(cluster).items()}
            return hold(cluster, crowd, idle, args) | {"nodes": nodes, "idle_cores": idle}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def hold(
    cluster: Cluster,
    crowd: list[SimulatedLocation],
    idle: dict[str, float],
    args: argparse.Namespace,
) -> dict[str, object]:
    """Hold the crowd's screens through the balancer; costs over the steady window."""
    t = cluster.topology
    series: list[tuple[float, int, dict[str, float], dict[str, int]]] = []

    def progress(row: dict[str, object]) -> None:
        sent = row.get("sent")
        sockets = {f"page-{n.name}": established(n.app) for n in t.page_nodes}
        at = float(str(row["at_s"]))
        series.append((at, sent if isinstance(sent, int) else 0, cpu_now(cluster), sockets))
        print(
            f"  t={at:>5.1f}s online {row.get('online')} server {row.get('server')} sent {sent} "
            f"lost {row.get('lost')} sockets {sockets} load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    plan = LoadPlan(
        base_url=t.base_url, summit=DEMO_SLUG, locations=tuple(crowd),
        duration_s=args.duration, ramp_s=args.ramp, sample_every_s=2.0,
    )  # fmt: skip
    result = LoadTest(plan, progress).run()
    steady_from = result.steady_from()
    # Two samples after the steady state began: its first one may hold the ramp's tail.
    steady = [row for row in series if steady_from is not None and row[0] >= steady_from + 4]
    if len(steady) < 2:
        raise SystemExit(f"no steady state at {len(t.page_nodes)} nodes: {result.summary()}")
    return costs(steady[0], steady[-1], idle) | {
        "lost": result.summary()["lost"],
        "count_exact_after_all_online": result.summary()["count_exact_after_all_online"],
        "steady_latency_ms": result.summary()["steady_latency_ms"],
    }


def costs(
    first: tuple[float, int, dict[str, float], dict[str, int]],
    last: tuple[float, int, dict[str, float], dict[str, int]],
    idle: dict[str, float],
) -> dict[str, object]:
    """CPU µs per heartbeat between two samples: whole, and above the idle processes'."""
    window = last[0] - first[0]
    beats = last[1] - first[1]
    used = {role: last[2][role] - first[2][role] for role in first[2]}
    above = {role: max(0.0, used[role] - idle[role] * window) for role in used}
    pages = [role for role in used if role.startswith("page-")]
    sockets = last[3]
    share = {role: sockets[role] / max(1, sum(sockets.values())) for role in pages}
    return {
        "window_s": round(window, 1),
        "heartbeats": beats,
        "heartbeats_per_s": round(beats / window, 1),
        "sockets": sockets,
        "server_us_per_heartbeat": round(sum(used[r] for r in pages) / beats * 1e6, 1),
        "server_us_per_heartbeat_above_idle": round(sum(above[r] for r in pages) / beats * 1e6, 1),
        # Each node's CPU over the heartbeats its own sockets sent (by its share of sockets).
        "per_node_us_per_heartbeat": {
            r: round(used[r] / max(1.0, beats * share[r]) * 1e6, 1) for r in pages
        },
        "redis_us_per_heartbeat": round(used["redis"] / beats * 1e6, 2),
        "redis_us_per_heartbeat_above_idle": round(above["redis"] / beats * 1e6, 2),
        "balancer_us_per_heartbeat": round(used["balancer"] / beats * 1e6, 1),
        "cores": {role: round(value / window, 3) for role, value in used.items()},
    }


def report(rows: list[dict[str, object]]) -> None:
    """The headline lines: linearity against one node, and where one Redis ends."""
    base = rows[0]
    for key in ("server_us_per_heartbeat", "server_us_per_heartbeat_above_idle"):
        one = float(base[key])  # type: ignore[arg-type]
        ratios = ", ".join(
            f"{row['nodes']} nodes {float(row[key]) / one:.3f}"  # type: ignore[arg-type]
            for row in rows[1:]
        )
        print(f"{key}: {base['nodes']} node {one:.1f} µs; as a ratio of it: {ratios}")
    largest = rows[-1]
    for key in ("redis_us_per_heartbeat", "redis_us_per_heartbeat_above_idle"):
        us = float(largest[key])  # type: ignore[arg-type]
        per_core = 1e6 / us
        print(
            f"{key} at {largest['nodes']} nodes: {us:.2f} µs (all sizes: "
            f"{', '.join(str(row[key]) for row in rows)}) -> one Redis core sustains "
            f"{per_core:,.0f} heartbeats/s = {per_core * 10:,.0f} locations at a 10 s interval; "
            f"100,000 locations use {100_000 / 10 * us / 1e6:.2f} of a core, "
            f"300,000 use {300_000 / 10 * us / 1e6:.2f}"
        )


def main() -> None:
    """Run each size in turn and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--per-node", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--ramp", type=float, default=10.0)
    args = parser.parse_args()
    rows = []
    for nodes in (int(n) for n in args.nodes.split(",")):
        print(f"{nodes} page node(s), {nodes * args.per_node:,} locations, load "
              f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        row = measure(nodes, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    report(rows)


if __name__ == "__main__":
    main()
