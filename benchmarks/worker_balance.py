"""Worker balance and the herd: 30,000 screens on `summitcast serve --workers 2`.

Two runs against the same database and a private redis-server, a fresh server each:

1. **herd**: every screen connects at once. Measured: how the kernel split the
   sockets between the workers (each has its own SO_REUSEPORT socket; counted from
   /proc, cli/serving.py), and the heartbeat ack p99 from the third interval after all
   were online on (screens start beating at a random phase, frontend/src/live.js).
2. **ramp** (the reference): the same screens join over 60 s; its steady p99.

Prints the split, both p99s and their ratio (herd / ramp). 127.0.0.1 only, bounded by
--duration per run; cleans up after itself.

    .venv/bin/python benchmarks/worker_balance.py --locations 30000 --duration 150
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

import presence_load
from presence_load import POSTGRES_ADMIN_URL, _free_port, _seed  # benchmarks/ is on sys.path
from summitcast.loadtest.run import LoadPlan, LoadTest, _percentiles
from summitcast.loadtest.split import larger_share, per_process
from summitcast.services.demo import DEMO_SLUG


def _workers(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _start_server(
    argv: list[str], env: dict[str, str], log: Any, base: str
) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        time.sleep(0.3)
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    workers = _workers(server.pid)
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def run(
    name: str, located: list[Any], args: argparse.Namespace, argv: list[str], env: dict[str, str],
    log: Any, base: str, port: int,
) -> dict[str, Any]:  # fmt: skip
    """One run (herd or ramp) on a fresh server: split samples and latencies."""
    server = _start_server(argv, env, log, base)
    splits: list[dict[int, int]] = []
    try:
        # Both workers listening before the first screen (else the first takes them all).
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline:
            workers = _workers(server.pid)
            listening = per_process(port, workers, "0A") if workers else {}
            if len(workers) == args.workers and all(listening.values()):
                break
            time.sleep(0.3)

        def progress(row: dict[str, object]) -> None:
            online = row.get("online")
            split = per_process(port, workers)  # ~0.1 s at 30,000 sockets
            splits.append(split)
            print(
                f"{name} t={row['at_s']}s server {row['server']} online {online} "
                f"per worker {list(split.values())} errors {row.get('connect_errors')} "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        plan = LoadPlan(
            base_url=base,
            summit=DEMO_SLUG,
            locations=tuple(located),
            duration_s=args.duration,
            ramp_s=0.0 if name == "herd" else args.ramp,
            sample_every_s=2.0,
            timeout_s=args.timeout,
        )
        result = LoadTest(plan, progress).run()
    finally:
        _stop(server)
    steady_from = result.steady_from()
    third = None if steady_from is None else steady_from + 2 * args.interval
    from_third = sorted(ms for at, ms in result.latencies if third is not None and at >= third)
    summary = result.summary()
    # When a loaded machine never gets every screen online there is no steady state:
    # the last 60 s of acks, whoever was online, compare herd and ramp all the same.
    last = sorted(ms for at, ms in result.latencies if at >= args.duration - 60)
    # The split once most are connected (early on a few hundred sockets say little).
    most = max((sum(s.values()) for s in splits), default=0)
    settled = [s for s in splits if sum(s.values()) >= 0.9 * most]
    worst = max(settled, key=lambda s: larger_share(s.values()), default={})
    return {
        "all_online_s": steady_from,
        "steady_latency_ms": summary["steady_latency_ms"],
        "from_third_interval_s": third,
        "from_third_interval_latency_ms": _percentiles(from_third),
        "last_60s_latency_ms": _percentiles(last),
        "lost": summary["lost"],
        "never_online": summary["never_online"],
        "connect_errors": summary["connect_errors"],
        "error_kinds": summary["error_kinds"],
        "split_samples": len(settled),
        "connected_most": most,
        "split_last": list(splits[-1].values()) if splits else None,
        "split_worst": list(worst.values()),
        "larger_share_worst": round(larger_share(worst.values()), 4) if worst else None,
        "failures": summary["failures"],
    }


def main() -> None:
    """Run the herd and the ramp and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=35.0)
    parser.add_argument("--duration", type=float, default=150.0)
    parser.add_argument("--ramp", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="summitcast-balance-"))
    name = f"summitcast_balance_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    redis_port = _free_port()
    redis_exe = shutil.which("redis-server") or "redis-server"
    redis = subprocess.Popen(
        [redis_exe, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        located = _seed(database_url, args.locations)
        print(f"seeded {len(located):,} in {time.monotonic() - started:.0f} s", flush=True)
        env = {
            **os.environ,
            "SUMMITCAST_DATABASE_URL": database_url,
            "SUMMITCAST_DATA_DIR": str(tmp),
            "SUMMITCAST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SUMMITCAST_HEARTBEAT_INTERVAL_S": str(args.interval),
            "SUMMITCAST_HEARTBEAT_TIMEOUT_S": str(args.timeout),
            "SUMMITCAST_BROADCAST_WORKERS": "false",
            "SUMMITCAST_JOB_WORKERS": "false",
        }
        key = getattr(presence_load, "BENCH_KEY", None)  # the key the seeded secrets need
        if key:
            env["SUMMITCAST_SECRET_KEY"] = key
        port = _free_port()
        argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
        argv += ["--workers", str(args.workers)]
        base = f"http://127.0.0.1:{port}"
        load_before = os.getloadavg()
        with (tmp / "serve.log").open("wb") as log:
            herd = run("herd", located, args, argv, env, log, base, port)
            time.sleep(args.timeout + 2)  # the herd's locations time out before the ramp
            ramp = run("ramp", located, args, argv, env, log, base, port)
        herd_p99 = herd["from_third_interval_latency_ms"]["p99"]
        ramp_p99 = ramp["steady_latency_ms"]["p99"]
        text = (tmp / "serve.log").read_text(errors="replace")
        summary = {
            "locations": args.locations,
            "workers": args.workers,
            "interval_s": args.interval,
            "herd": herd,
            "ramp": ramp,
            "herd_p99_from_third_interval_ms": herd_p99,
            "ramp_steady_p99_ms": ramp_p99,
            "ratio_herd_over_ramp": round(herd_p99 / ramp_p99, 2)
            if herd_p99 and ramp_p99
            else None,
            "larger_share_worst": herd["larger_share_worst"],
            "backlog_capped_logged": "capped by the kernel" in text,
            "tracebacks": text.count("Traceback"),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(summary, indent=2, default=str))
        if args.json is not None:
            args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    finally:
        redis.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            redis.wait(timeout=30)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
