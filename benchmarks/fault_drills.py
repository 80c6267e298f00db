"""Fault drills, long: PostgreSQL restarted, Redis killed, the app killed -9, under load.

The drills of tests/faults with minutes instead of seconds: the same write load (place
registrations through the browser form, backstage speaker edits, upload chunks, page
reads; tests/faults/load.py) against `summitcast serve`, the same fault, the same checks
(no 5xx but 503 with Retry-After, no acknowledged write lost). Each prints its answers
by status, the wrong ones, the writes lost, how long until every kind of request
succeeded again, and as its ratio the rate of acknowledged writes (or, for Redis,
counted heartbeats) in the `--after` seconds once recovered against the rate in the
`--before` seconds before the fault: the reference, measured in the same run.

    .venv/bin/python benchmarks/fault_drills.py [--drill postgres|redis|kill|all]
        [--before 20] [--down 10] [--after 20]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.load import (
    KINDS,
    SLUG,
    Load,
    Tally,
    drill_env,
    missing_writes,
    screen_location,
    seed,
)
from tests.faults.servers import private_postgres, private_redis, serve, wait_until

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat

# The first requests of a fresh server are slow (imports, caches): not the reference.
WARM_UP_S = 10.0
WRITES = (303, 201, 204)  # a registration or an edit (PRG), an upload made, a chunk kept


def _writes(tally: Tally) -> int:
    with tally.lock:
        return sum(tally.statuses[s] for s in WRITES)


def _rate(count: Callable[[], int], seconds: float) -> float:
    start = count()
    time.sleep(seconds)
    return (count() - start) / seconds


def _recovered(tally: Tally, since: float, kinds: tuple[str, ...] = KINDS) -> float:
    wait_until(lambda: all(tally.last_ok.get(k, 0) > since for k in kinds), 120, "recovery")
    return max(tally.last_ok[k] for k in kinds) - since


def _report(name: str, tally: Tally, lost: list[str], figures: dict[str, float]) -> None:
    print(f"\n== {name}")
    answers = dict(sorted(tally.statuses.items()))
    print(f"answers: {answers}; no answer (refused or timed out): {tally.refused}")
    print(f"wrong answers (5xx but 503 + Retry-After): {len(tally.wrong)} {tally.wrong[:3]}")
    acked = sum(offset // (64 * 1024) for _, offset in tally.acked.values())
    print(
        f"acknowledged: {len(tally.registered)} registrations, {len(tally.speakers)} speaker "
        f"edits, {acked} upload chunks; lost: {len(lost)} {lost[:3]}"
    )
    for key, value in figures.items():
        print(f"{key}: {value:.2f}")


def drill_postgres(args: argparse.Namespace, tmp: Path) -> None:
    """PostgreSQL stopped for --down seconds (fast shutdown) and started again."""
    secret = secrets.token_urlsafe(48)
    with private_postgres() as postgres:
        tokens = seed(postgres.url, secret, invitations=4)
        env = drill_env(postgres.url, secret) | {"SUMMITCAST_DATA_DIR": str(tmp / "pg")}
        with serve(env, tmp) as server:
            load = Load(server.base_url, tokens, registrars=4)
            load.start()
            try:
                _recovered(load.tally, 0)
                time.sleep(WARM_UP_S)
                before = _rate(lambda: _writes(load.tally), args.before)
                postgres.stop()
                time.sleep(args.down)
                postgres.start()
                back = time.monotonic()
                recovery = _recovered(load.tally, back)
                after = _rate(lambda: _writes(load.tally), args.after)
            finally:
                tally = load.finish()
        lost = missing_writes(postgres.url, tmp / "pg" / "uploads", tally)
    _report(
        f"PostgreSQL down {args.down:.0f} s under load",
        tally,
        lost,
        {
            "writes/s before": before,
            "every kind answered again after PostgreSQL was back (s)": recovery,
            "writes/s after": after,
            "ratio after/before": after / before,
        },
    )


def drill_kill(args: argparse.Namespace, tmp: Path) -> None:
    """The app killed with SIGKILL, then started again on the same SQLite data."""
    secret = secrets.token_urlsafe(48)
    data = tmp / "kill"
    data.mkdir()
    url = f"sqlite:///{data / 'summitcast.db'}"
    tokens = seed(url, secret, invitations=4)
    env = drill_env(url, secret) | {"SUMMITCAST_DATA_DIR": str(data)}
    with serve(env, tmp) as server:
        load = Load(server.base_url, tokens, registrars=4)
        load.start()
        try:
            _recovered(load.tally, 0)
            time.sleep(WARM_UP_S)
            before = _rate(lambda: _writes(load.tally), args.before)
            killed = time.monotonic()
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
        finally:
            tally = load.finish()
    lost = missing_writes(url, data / "uploads", tally)
    with serve(env, tmp) as again:
        serving_s = time.monotonic() - killed
        second = Load(again.base_url, tokens, registrars=4)
        second.start()
        try:
            _recovered(second.tally, 0)
            after = _rate(lambda: _writes(second.tally), args.after)
        finally:
            second.finish()
    _report(
        "serve killed (SIGKILL) under load, SQLite",
        tally,
        lost,
        {
            "writes/s before": before,
            "serving again after the kill (s)": serving_s,
            "writes/s after": after,
            "ratio after/before": after / before,
        },
    )


def drill_redis(args: argparse.Namespace, tmp: Path) -> None:
    """Redis killed (nothing persisted) for --down seconds under heartbeats and page reads."""
    secret = secrets.token_urlsafe(48)
    data = tmp / "redis"
    data.mkdir()
    url = f"sqlite:///{data / 'summitcast.db'}"
    tokens = seed(url, secret, invitations=2)
    screen = screen_location(url, secret)
    with private_redis() as redis_server:
        env = drill_env(url, secret) | {
            "SUMMITCAST_DATA_DIR": str(data),
            "SUMMITCAST_REDIS_URL": redis_server.url,
        }
        with serve(env, tmp) as server:
            load = Load(server.base_url, tokens)
            beats = Tally()
            stop = threading.Event()

            def beat() -> None:
                with httpx.Client(base_url=server.base_url, timeout=20) as client:
                    seq = 0
                    while not stop.is_set():
                        token = sign_heartbeat(
                            screen.secret.encode(), screen.location_id, "bench-epoch", seq,
                            int(time.time()),
                        )  # fmt: skip
                        body = json.dumps({"token": encode_heartbeat(token)})
                        beats.note("heartbeat", client.post("/live/heartbeat", content=body))
                        beats.note("figures", client.get(f"/live/s/{SLUG}/figures.json"))
                        seq += 1

            beater = threading.Thread(target=beat)
            load.start()
            beater.start()
            try:
                _recovered(beats, 0, ("heartbeat",))
                time.sleep(WARM_UP_S)
                before = _rate(lambda: beats.statuses[200], args.before)
                redis_server.stop()
                time.sleep(args.down)
                redis_server.start()
                back = time.monotonic()
                recovery = _recovered(beats, back, ("heartbeat", "figures"))
                after = _rate(lambda: beats.statuses[200], args.after)
            finally:
                stop.set()
                beater.join()
                tally = load.finish()
            log = server.log.read_text(errors="replace")
    tally.statuses.update(beats.statuses)
    tally.wrong += beats.wrong
    _report(
        f"Redis down {args.down:.0f} s under heartbeats, figures and writes",
        tally,
        missing_writes(url, data / "uploads", tally),
        {
            "heartbeats+figures answered 200 per s before": before,
            "presence answered again after Redis was back (s)": recovery,
            "per s after": after,
            "ratio after/before": after / before,
            "server log lines": len(log.splitlines()),
            "tracebacks in the log": log.count("Traceback"),
        },
    )


DRILLS = {"postgres": drill_postgres, "kill": drill_kill, "redis": drill_redis}


def main() -> None:
    """Run the chosen drills and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drill", choices=[*DRILLS, "all"], default="all")
    parser.add_argument("--before", type=float, default=20.0)
    parser.add_argument("--down", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=20.0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="fault-drills-") as folder:
        for name, drill in DRILLS.items():
            if args.drill in (name, "all"):
                drill(args, Path(folder))


if __name__ == "__main__":
    main()
