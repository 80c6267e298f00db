"""Refused screens: 100 location screens in Chromium with links the server refuses, 2 minutes.

70 screens open an approved location with a wrong (as if re-issued) secret, 30 a revoked
location with its right secret. A proxy in front of `summitcast serve` counts every
presence socket they open (summitcast/loadtest/counting_proxy.py). The reference, in the
same run: 10 screens with the presence client as it was before the fix (built from git,
served in place of build/live.js), for 30 s. Prints both rates and their ratio; the target
is fewer than 300 attempts for the 100 screens in 2 minutes.

    .venv/bin/python benchmarks/refused_screens.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import presence_load
from presence_load import _free_port, _seed  # benchmarks/ is on sys.path
from summitcast.loadtest.counting_proxy import counting_proxy
from summitcast.services import locations
from summitcast.storage.database import Database
from summitcast.storage.tables import Location

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose live.js reset the backoff at every hello (~0.75 s retries).
BEFORE_FIX = "ef1c630~1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def build_old_client(folder: Path) -> bytes:
    """live.js as it was before the fix, bundled as frontend/build.mjs does."""
    for name in ("live", "common", "hmac"):
        source = subprocess.run(
            ["git", "show", f"{BEFORE_FIX}:frontend/src/{name}.js"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout  # fmt: skip
        (folder / f"{name}.js").write_bytes(source)
    script = (
        "require('esbuild').buildSync({entryPoints:[process.argv[1]],outfile:process.argv[2],"
        "bundle:true,format:'iife',target:['es2020'],minify:true})"
    )
    subprocess.run(
        ["node", "-e", script, str(folder / "live.js"), str(folder / "old-live.js")],
        cwd=ROOT, check=True, env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
    )  # fmt: skip
    return (folder / "old-live.js").read_bytes()


def count_for(counts: object, since: float, until: float) -> int:
    """Attempts the proxy saw between two monotonic instants."""
    return sum(since <= at < until for at in counts.attempts)  # type: ignore[attr-defined]


def main() -> None:
    """Run the reference and the 100 screens; print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--reference-screens", type=int, default=10)
    parser.add_argument("--reference-seconds", type=float, default=30.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="summitcast-refused-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    located = _seed(url, args.screens + args.reference_screens)
    revoked = located[: args.screens * 3 // 10]
    database = Database(url)
    with database.session() as db:
        for location in revoked:
            row = db.query(Location).filter_by(public_id=location.location_id).one()
            locations.revoke_location(db, row)
    database.dispose()
    old_client = build_old_client(tmp)
    env = {
        **os.environ,
        "SUMMITCAST_DATABASE_URL": url,
        "SUMMITCAST_DATA_DIR": str(tmp),
        "SUMMITCAST_BROADCAST_WORKERS": "false",
        "SUMMITCAST_JOB_WORKERS": "false",
    }
    env.pop("SUMMITCAST_REDIS_URL", None)
    key = getattr(presence_load, "BENCH_KEY", None)  # the key the seeded secrets need
    if key:
        env["SUMMITCAST_SECRET_KEY"] = key
    port = _free_port()
    argv = [sys.executable, "-m", "summitcast.cli", "serve", "--port", str(port)]
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        with (
            counting_proxy("127.0.0.1", port) as (proxy, counts),
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            base = f"http://127.0.0.1:{proxy}"

            def link(i: int) -> str:
                location = located[i]
                secret = location.secret if location in revoked else "an-old-re-issued-secret"
                return f"{base}/l/{location.location_id}#k={secret}"

            # The reference: the old client, same server, same kind of refusal.
            old = browser.new_context()
            old.route(
                "**/static/build/live.js",
                lambda route: route.fulfill(body=old_client, content_type="text/javascript"),
            )
            started = time.monotonic()
            for i in range(args.screens, args.screens + args.reference_screens):
                old.new_page().goto(link(i))
            time.sleep(max(0.0, args.reference_seconds - (time.monotonic() - started)))
            reference = count_for(counts, started, time.monotonic())
            reference_s = time.monotonic() - started
            old.close()
            time.sleep(1.0)

            new = browser.new_context()
            started = time.monotonic()
            pages = []
            for i in range(args.screens):
                page = new.new_page()
                page.goto(link(i))
                pages.append(page)
            opened_s = time.monotonic() - started
            time.sleep(max(0.0, args.seconds - (time.monotonic() - started) + opened_s))
            attempts = count_for(counts, started, time.monotonic())
            window_s = time.monotonic() - started
            told: dict[str, int] = {}
            for page in pages:
                state = page.locator("#presence-status").get_attribute("data-state")
                cover = page.locator("#screen-refused").is_visible()
                told[f"{state}, cover {'shown' if cover else 'hidden'}"] = (
                    told.get(f"{state}, cover {'shown' if cover else 'hidden'}", 0) + 1
                )
            new.close()
            browser.close()
        per_screen_minute_old = reference / args.reference_screens / (reference_s / 60)
        per_screen_minute_new = attempts / args.screens / (window_s / 60)
        summary = {
            "screens": args.screens,
            "window_s": round(window_s, 1),
            "opening_all_took_s": round(opened_s, 1),
            "attempts": attempts,
            "target": "< 300",
            "met": attempts < 300,
            "hosts_told": told,
            "reference_old_client": {
                "screens": args.reference_screens,
                "seconds": round(reference_s, 1),
                "attempts": reference,
            },
            "attempts_per_screen_minute": {
                "new": round(per_screen_minute_new, 2),
                "old": round(per_screen_minute_old, 2),
            },
            "ratio_new_over_old": round(per_screen_minute_new / per_screen_minute_old, 4)
            if per_screen_minute_old
            else None,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(summary, indent=2))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
