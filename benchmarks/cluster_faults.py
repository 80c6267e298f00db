"""Cluster faults at full size: a page node killed under 3,000 locations, Redis and PostgreSQL.

The small topology of `deploy/loopback-small.toml` (2 page nodes, 2 broadcast nodes, 2
edges, balancer, its own PostgreSQL and Redis on 127.0.0.x) started by the cluster
harness, with --locations screens (default 3,000) held through the balancer at the
production heartbeat interval (--interval, default 10 s). Then:

1. page node p1 is killed (SIGKILL of its process group): how long until every screen
   is online again (limit: two heartbeat intervals), and whether the count read on p2
   and through the balancer was ever not exactly the crowd (a screen lost or counted
   twice) from the kill until well past the heartbeat timeout;
2. Redis, then PostgreSQL, restarted under page and registration traffic: answers by
   status (503 with Retry-After allowed while a back-end is away; no 500, no 502), and
   acknowledged registrations missing from the database.

Its ratio: screens online (read through the balancer) after recovery against before
the kill, which must be 1.000. The same checks run at 300 screens and a 2 s interval in
tests/cluster/test_cluster.py.

    .venv/bin/python benchmarks/cluster_faults.py [--locations 3000] [--interval 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.screens import Screens, Traffic, seed, total, wait_for  # noqa: E402

from summitcast.cluster.harness import SMALL_NODE_ENV, Cluster  # noqa: E402
from summitcast.deploy.topology import load_topology  # noqa: E402


def node_env(interval_s: float) -> dict[str, str]:
    """Settings of every node: the interval asked for, its default timeout ratio (3.5)."""
    return SMALL_NODE_ENV | {
        "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(interval_s),
        "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(3.5 * interval_s),
        "SUMMITCAST_REGISTRATIONS_PER_HOUR": "1000000",
    }


def kill_page_node(cluster: Cluster, screens: Screens, crowd: int, interval_s: float) -> dict:
    """Kill p1; time until every screen is online again; every count read meanwhile."""
    urls = cluster.urls()
    reconnects_before = screens.counter("reconnects")
    cluster.kill("page-p1")
    killed_at = time.monotonic()
    back_s = wait_for(
        lambda: (
            screens.counter("reconnects") >= reconnects_before + crowd // 4
            and screens.counter("online") == crowd
        ),
        10 * interval_s,
        lambda: f"the killed node's screens online again: {screens.latest}",
    )
    counts: list[int | None] = []
    while time.monotonic() - killed_at < 3.5 * interval_s + 2:
        counts += [total(urls["page-p2"]), total(urls["balancer"])]
        time.sleep(0.5)
    cluster.start("page-p1")
    return {
        "back_s": back_s,
        "limit_s": 2 * interval_s,
        "reads": len(counts),
        "reads_not_exact": [c for c in counts if c != crowd],
        "moved": screens.counter("reconnects") - reconnects_before,
    }


def restart_back_ends(cluster: Cluster, probe: object, crowd: int) -> dict:
    """Redis then PostgreSQL restarted under page and registration traffic."""
    urls = cluster.urls()
    traffic = Traffic(urls["balancer"], probe)  # type: ignore[arg-type]
    traffic.start()
    try:
        wait_for(lambda: len(traffic.tally.registered) >= 2, 30, "registrations before")
        cluster.restart_redis(down_s=2.0)
        redis_back_s = wait_for(
            lambda: (total(urls["page-p2"]) or 0) >= crowd,
            60,
            lambda: f"presence rebuilt after Redis: {total(urls['page-p2'])}",
        )
        before = len(traffic.tally.registered)
        cluster.restart_postgres(down_s=3.0)
        wait_for(lambda: len(traffic.tally.registered) >= before + 2, 60, "registrations after")
    finally:
        tally = traffic.finish()
    with psycopg.connect(cluster.database_url.replace("+psycopg", "", 1)) as conn:
        stored = {row[0] for row in conn.execute("SELECT public_id FROM locations")}
    return {
        "statuses": dict(tally.statuses),
        "wrong": tally.wrong[:5],
        "registrations_acknowledged": len(tally.registered),
        "registrations_lost": [p for p in tally.registered if p not in stored],
        "redis_presence_back_s": redis_back_s,
    }


def main() -> None:
    """Start the cluster, hold the crowd, run the faults, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="summitcast-cluster-bench-"))
    work.chmod(0o755)
    # nginx_workers=0: one worker per core, each with the production connection count (one
    # loopback worker holds ~2,000 screens' two connections each).
    topology = dataclasses.replace(
        load_topology(REPO / "deploy" / "loopback-small.toml"), root=work / "root", nginx_workers=0
    )
    try:
        with Cluster(topology, work, node_env=node_env(args.interval)) as cluster:
            crowd = seed(cluster.database_url, cluster.secret_key, args.locations + 1)
            screens = Screens(topology.base_url, crowd[:-1], ramp_s=args.interval)
            screens.start()
            try:
                wait_for(
                    lambda: screens.counter("online") == args.locations,
                    120,
                    lambda: f"every screen online: {screens.latest}",
                )
                before = total(cluster.urls()["balancer"])
                killed = kill_page_node(cluster, screens, args.locations, args.interval)
                faults = restart_back_ends(cluster, crowd[-1], args.locations)
                time.sleep(args.interval)
                online_after = screens.counter("online")
                after = total(cluster.urls()["balancer"])
            finally:
                screens.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"locations {args.locations}, heartbeat interval {args.interval:g} s")
    print(f"page node killed: {killed}")
    print(f"Redis and PostgreSQL restarted: {faults}")
    # The count after includes the traffic's probe location (it beats too).
    print(f"counted through the balancer: before {before}, after {after} (+1: the probe)")
    print(f"ratio: screens online after / before the faults = {online_after / args.locations:.3f}")


if __name__ == "__main__":
    main()
