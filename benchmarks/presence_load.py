"""Presence at scale: N simulated location screens against `summitcast serve`, end to end.

Sets up everything of its own (a PostgreSQL database, a private redis-server on a free
port, N approved locations), runs `summitcast serve --workers W`, drives it with the
load tool (client processes on 127.0.0.2, .3, …), samples the server's RSS, and prints
the load tool's figures plus RSS against the targets of issue 3. Bounded: it stops by
itself after --duration seconds and cleans up.

    .venv/bin/python benchmarks/presence_load.py --locations 30000 --workers 2 --duration 120
    .venv/bin/python benchmarks/presence_load.py --locations 30000 --workers 2 --herd --duration 90
    .venv/bin/python benchmarks/presence_load.py --locations 15000 --workers 1 --memory
    .venv/bin/python benchmarks/presence_load.py --locations 30000 --workers 2 --restart-at 60

With --restart-at S the server is stopped S seconds into the run (SIGINT: uvicorn closes
every socket with 1012) and started again: the other thundering herd, every screen
reconnecting after a restart. It prints how long after the stop all were online again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from summitcast.loadtest.client import SimulatedLocation
from summitcast.loadtest.run import LoadPlan, LoadResult, LoadTest
from summitcast.services import locations
from summitcast.services.demo import DEMO_SLUG, seed_demo
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database

# The app key of the benchmark's servers: the locations' secrets are sealed under it.
BENCH_KEY = "benchmark-only-secret-" + "x" * 32

POSTGRES_ADMIN_URL = os.environ.get(
    "SUMMITCAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
COUNTRIES = ("DE", "KE", "BR", "IN", "NG", "US", "FR", "JP", "MX", "ZA", "GB", "ID")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [p for c in children for p in _tree(int(c))]


def _seed(database_url: str, count: int) -> list[SimulatedLocation]:
    database = Database(database_url)
    try:
        database.upgrade()
        with database.session() as db:
            summit = seed_demo(db, start=datetime.now(UTC).date()).summit
            inputs = [
                # A third public with a city, as a real crowd: each public one costs a
                # second presence update (its map cell) on every heartbeat.
                locations.LocationInput(
                    label=f"Bench {i}",
                    country=COUNTRIES[i % len(COUNTRIES)],
                    city="Berlin" if COUNTRIES[i % len(COUNTRIES)] == "DE" else "",
                    privacy_level="public" if i % 3 == 0 else "country",
                )
                for i in range(count)
            ]
            made = locations.register_locations_bulk(
                db, summit, inputs, links=LinkSecrets(BENCH_KEY)
            )
    finally:
        database.dispose()
    return [SimulatedLocation(m.location_id, m.secret) for m in made]


def _steady_cost(
    series: list[tuple[float, int, float, float, float]], steady_from: float | None
) -> dict[str, float] | None:
    """CPU µs per heartbeat of server, Redis and load tool once everyone is online."""
    steady = [row for row in series if steady_from is not None and row[0] >= steady_from]
    if len(steady) < 2 or steady[-1][1] <= steady[0][1]:
        return None
    first, last = steady[0], steady[-1]
    beats = last[1] - first[1]
    names = ("server", "redis", "load_tool_clients")
    return {n: round((last[i] - first[i]) / beats * 1e6, 1) for i, n in enumerate(names, 2)} | {
        "window_s": round(last[0] - first[0], 1),
        "cores_busy_server": round((last[2] - first[2]) / max(0.1, last[0] - first[0]), 2),
    }


def _after_restart(
    restart: dict[str, float], online_at: list[tuple[float, int]], locations: int
) -> dict[str, float | None]:
    """When the server stopped and came back, and how long until every screen was online."""
    stopped = restart["stopped_at_s"]
    after = [(at, online) for at, online in online_at if at > stopped]
    fewest = min((online for _, online in after), default=None)
    back = next((at - stopped for at, online in after if online >= locations), None)
    return {
        "stopped_at_s": round(stopped, 1),
        "server_down_after_s": round(restart.get("down_after_s", 0.0), 1),
        "server_serving_again_after_s": round(restart.get("serving_after_s", 0.0), 1),
        "fewest_online_after_stop": fewest,
        "all_online_again_after_s": None if back is None else round(back, 1),
    }


def _sent(summary_of: LoadResult) -> int:
    sent = summary_of.totals.get("sent", 0)
    return sent if isinstance(sent, int) else 0


def main() -> None:
    """Run one presence load benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="in-process presence (1 worker)")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=35.0)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--herd", action="store_true")
    parser.add_argument("--dashboards", type=int, default=0)
    parser.add_argument("--probes", type=int, default=0)
    parser.add_argument("--no-gc-freeze", action="store_true")
    parser.add_argument("--restart-at", type=float, default=None, metavar="S")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.memory and args.workers != 1:
        parser.error("--memory counts per process: use --workers 1")

    tmp = Path(tempfile.mkdtemp(prefix="summitcast-bench-"))
    name = f"summitcast_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    redis_proc: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()
        located = _seed(database_url, args.locations + args.probes)
        print(
            f"seeded {len(located):,} locations in {time.monotonic() - started:.1f} s", flush=True
        )
        env = {
            **os.environ,
            "SUMMITCAST_DATABASE_URL": database_url,
            "SUMMITCAST_DATA_DIR": str(tmp),
            "SUMMITCAST_SECRET_KEY": BENCH_KEY,
            "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(args.interval),
            "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(args.timeout),
            "SUMMITCAST_BROADCAST_WORKERS": "false",
            "SUMMITCAST_JOB_WORKERS": "false",
        }
        env.pop("SUMMITCAST_REDIS_URL", None)
        if not args.memory:
            redis_port = _free_port()
            redis_exe = shutil.which("redis-server") or "redis-server"
            redis_proc = subprocess.Popen(
                [redis_exe, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                stdout=subprocess.DEVNULL,
            )
            env["SUMMITCAST_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        port = _free_port()
        argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
        argv += ["--workers", str(args.workers)]
        if args.no_gc_freeze:
            argv.append("--no-gc-freeze")
        log = (tmp / "serve.log").open("wb")
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        time.sleep(2)  # every worker up
        rss_peak = [0]
        server_cpu: dict[int, float] = {}  # pid → last CPU seconds seen (workers live on)
        stop = threading.Event()
        redis_cpu_before = _cpu_s(redis_proc.pid) if redis_proc is not None else 0.0
        server_cpu_before = sum(_cpu_s(p) for p in _tree(server.pid))
        clients_before = resource.getrusage(resource.RUSAGE_CHILDREN)

        def watch_rss() -> None:
            while not stop.is_set():
                pids = _tree(server.pid) if server is not None else []
                # The multiprocessing resource tracker is tiny; workers dominate.
                rss_peak[0] = max(rss_peak[0], sum(_rss_kib(p) for p in pids))
                for p in pids:
                    server_cpu[p] = max(server_cpu.get(p, 0.0), _cpu_s(p))
                stop.wait(1.0)

        watcher = threading.Thread(target=watch_rss, daemon=True)
        watcher.start()
        load_before = os.getloadavg()
        plan = LoadPlan(
            base_url=base,
            summit=DEMO_SLUG,
            locations=tuple(located),
            duration_s=args.duration,
            ramp_s=0.0 if args.herd else args.ramp,
            sample_every_s=2.0,
            dashboards=args.dashboards,
            probes=args.probes,
            timeout_s=args.timeout,
        )

        own = {server.pid, redis_proc.pid if redis_proc is not None else -1}
        series: list[tuple[float, int, float, float, float]] = []
        online_at: list[tuple[float, int]] = []
        restart: dict[str, float] = {}

        def restart_later(run_started: float) -> None:
            nonlocal server
            if args.restart_at is None or stop.wait(args.restart_at) or server is None:
                return
            restart["stopped_at_s"] = time.monotonic() - run_started
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
            restart["down_after_s"] = time.monotonic() - run_started - restart["stopped_at_s"]
            server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            own.add(server.pid)
            while not stop.is_set():
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                time.sleep(0.1)
            restart["serving_after_s"] = time.monotonic() - run_started - restart["stopped_at_s"]

        def progress(row: dict[str, object]) -> None:
            # CPU of each party at this instant, to cost the steady state apart from the ramp.
            clients = [p for p in _tree(os.getpid())[1:] if p not in own]
            clients = [c for c in clients if c not in _tree(server.pid)]
            sent = row.get("sent")
            online = row.get("online")
            online_at.append((float(str(row["at_s"])), online if isinstance(online, int) else 0))
            series.append(
                (
                    float(str(row["at_s"])),
                    sent if isinstance(sent, int) else 0,
                    sum(_cpu_s(p) for p in _tree(server.pid)),
                    _cpu_s(redis_proc.pid) if redis_proc is not None else 0.0,
                    sum(_cpu_s(c) for c in clients),
                )
            )
            print(
                f"t={row['at_s']:>6}s server {row['server']} clients online {row.get('online')} "
                f"sent {row.get('sent')} acked {row.get('acked')} lost {row.get('lost')} "
                f"reconnects {row.get('reconnects')} connect errors {row.get('connect_errors')} "
                f"rss {rss_peak[0] / 1024:.0f} MiB load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        restarter = threading.Thread(target=restart_later, args=(time.monotonic(),), daemon=True)
        restarter.start()
        result = LoadTest(plan, progress).run()
        stop.set()
        watcher.join()
        restarter.join()
        # Who used the 2 cores: the server's processes, Redis, and the load tool's
        # client processes (joined by now, so counted in RUSAGE_CHILDREN).
        clients_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {
            "server": sum(server_cpu.values()) - server_cpu_before,
            "redis": (_cpu_s(redis_proc.pid) if redis_proc is not None else 0.0) - redis_cpu_before,
            "load_tool_clients": (clients_after.ru_utime + clients_after.ru_stime)
            - (clients_before.ru_utime + clients_before.ru_stime),
        }
        summary = result.summary() | {
            "workers": args.workers,
            "backend": "memory" if args.memory else "redis",
            "herd": args.herd,
            "interval_s": args.interval,
            "server_rss_peak_mib": round(rss_peak[0] / 1024),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "gc_freeze": not args.no_gc_freeze,
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "server_cpu_us_per_heartbeat": round(
                cpu["server"] / max(1, _sent(summary_of=result)) * 1e6, 1
            ),
            "steady_cpu_us_per_heartbeat": _steady_cost(series, result.steady_from()),
        }
        if restart:
            summary["restart"] = _after_restart(restart, online_at, args.locations)
        print(json.dumps(summary, indent=2, default=str))
        if args.json is not None:
            args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        text = (tmp / "serve.log").read_text(errors="replace")
        print(f"server log: {text.count('Traceback')} tracebacks, {text.count(' 500 ')} 500s")
        for line in text.splitlines():
            # The supervisor's view of its workers: restarts and kills show here.
            if any(
                w in line
                for w in ("hung", "died", "Child process", "Terminated", "Killed", "garbage")
            ):
                print("server:", line)
        if "Traceback" in text:
            first = text.index("Traceback")
            print(text[max(0, first - 200) : first + 3000])
    finally:
        # Workers of a supervisor that has to be killed would outlive it: note them first.
        workers = _tree(server.pid)[1:] if server is not None else []
        for proc in (server, redis_proc):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    # Only now, while their ids cannot have been reused by anyone else.
                    for pid in workers if proc is server else []:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
