"""Heartbeat path throughput against a bare Starlette POST endpoint, side by side.

Both run under uvicorn with the same options (1 worker by default, httptools, uvloop,
no access log) and are driven by wrk (C, one thread) so that the load generator costs
little of the CPU being measured. summitcast gets the real thing: POST /live/heartbeat
with pre-signed tokens of approved locations (token parse, HMAC check, replay check,
presence update, embedded in-process back-end). Every token is unique (one epoch per
token), so each is accepted once; only 2xx answers count. The reference is a bare
Starlette endpoint that parses the same JSON body and updates a dict.

    .venv/bin/python benchmarks/heartbeat_path.py [--seconds 8] [--connections 32] [--rounds 2]

Needs `wrk` (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

LUA = """
local bodies = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  i = i + 1
  if i > #bodies then i = 1 end  -- wrapped tokens are replays: refused, not counted
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def bare_app():  # type: ignore[no-untyped-def]
    """The reference: a bare Starlette POST endpoint that parses JSON and updates a dict."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen: dict[str, float] = {}

    async def heartbeat(request: Request) -> Response:
        token = json.loads(await request.body())["token"]
        seen[token[:40]] = time.monotonic()
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(routes=[Route("/live/heartbeat", heartbeat, methods=["POST"])])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{base}/live/heartbeat", content=b"{}", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wrk(base: str, bodies: Path, script: Path, seconds: float, connections: int) -> float:
    """2xx answers per second."""
    out = subprocess.run(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "-s", str(script)),
            *(f"{base}/live/heartbeat", "--", str(bodies)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    took = re.search(r"requests in ([\d.]+)(m?s)", out)
    assert took is not None
    duration = float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
    return (total - (int(bad.group(1)) if bad else 0)) / duration


def main() -> None:
    """Measure both endpoints in alternating rounds and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=150_000, help="pre-signed per round")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")

    from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
    from summitcast.services import locations
    from summitcast.services.demo import seed_demo
    from summitcast.services.link_secrets import LinkSecrets
    from summitcast.storage.database import Database

    # The app key of the benchmark's server: the locations' secrets are sealed under it.
    bench_key = "benchmark-only-secret-" + "x" * 32

    tmp = Path(tempfile.mkdtemp(prefix="summitcast-hb-"))
    database_url = f"sqlite:///{tmp / 'bench.db'}"
    database = Database(database_url)
    database.upgrade()
    with database.session() as db:
        summit = seed_demo(db, start=datetime.now(UTC).date()).summit
        inputs = [locations.LocationInput(label=f"L{i}", country="DE") for i in range(500)]
        made = locations.register_locations_bulk(db, summit, inputs, links=LinkSecrets(bench_key))
    database.dispose()

    script = tmp / "hb.lua"
    script.write_text(LUA)
    now = int(time.time())

    def token_file(round_no: int) -> Path:
        path = tmp / f"tokens-{round_no}.txt"
        with path.open("w") as out:
            for i in range(args.tokens):
                loc = made[i % len(made)]
                # One epoch per token: each is a fresh sequence, accepted exactly once.
                hb = sign_heartbeat(
                    loc.secret.encode(), loc.location_id, secrets.token_urlsafe(9), 0, now
                )
                out.write(json.dumps({"type": "hb", "token": encode_heartbeat(hb)}) + "\n")
        return path

    env = {
        **os.environ,
        "SUMMITCAST_DATABASE_URL": database_url,
        "SUMMITCAST_DATA_DIR": str(tmp),
        "SUMMITCAST_SECRET_KEY": bench_key,
        "SUMMITCAST_BROADCAST_WORKERS": "false",
        "SUMMITCAST_JOB_WORKERS": "false",
        "SUMMITCAST_HEARTBEAT_MAX_SKEW_S": "3600",
    }
    env.pop("SUMMITCAST_REDIS_URL", None)
    ours_rates: list[float] = []
    bare_rates: list[float] = []
    try:
        for round_no in range(args.rounds):
            bodies = token_file(round_no)
            port = _free_port()
            bare = subprocess.Popen(
                [sys.executable, __file__, "--serve-bare", str(port), str(args.workers)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait(f"http://127.0.0.1:{port}")
                bare_rates.append(
                    _wrk(f"http://127.0.0.1:{port}", bodies, script, args.seconds, args.connections)
                )
            finally:
                _stop(bare)
            port = _free_port()
            argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
            ours = subprocess.Popen(
                [*argv, "--workers", str(args.workers)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait(f"http://127.0.0.1:{port}")
                time.sleep(1)
                ours_rates.append(
                    _wrk(f"http://127.0.0.1:{port}", bodies, script, args.seconds, args.connections)
                )
            finally:
                _stop(ours)
            print(
                f"round {round_no + 1}: summitcast {ours_rates[-1]:,.0f}/s   "
                f"bare Starlette {bare_rates[-1]:,.0f}/s   "
                f"ratio {ours_rates[-1] / bare_rates[-1]:.2f}   load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours_m, bare_m = statistics.median(ours_rates), statistics.median(bare_rates)
    # Rounds are paired (one after the other) so the median of per-round ratios resists
    # the other work on a shared machine better than a ratio of medians.
    paired = statistics.median(o / b for o, b in zip(ours_rates, bare_rates, strict=True))
    print(
        f"heartbeat path {ours_m:,.0f}/s   bare Starlette {bare_m:,.0f}/s   "
        f"median paired ratio {paired:.2f} (target >= 0.5), {args.workers} worker(s)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        import uvicorn

        uvicorn.run(
            "heartbeat_path:bare_app",
            factory=True,
            app_dir=str(Path(__file__).parent),
            port=int(sys.argv[2]),
            workers=int(sys.argv[3]),
            access_log=False,
            log_level="warning",
        )
    else:
        main()
