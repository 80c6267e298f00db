"""Simulated location screens held against a cluster, and the page traffic of its fault tests."""

from __future__ import annotations

import json
import multiprocessing
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.loadtest.client import ClientPlan, SimulatedLocation, run_client
from summitcast.services import locations
from summitcast.services.demo import seed_demo
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from tests.faults.load import REGISTER_FORM, Tally

SLUG = "demo-summit"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def seed(database_url: str, secret_key: str, count: int) -> list[SimulatedLocation]:
    """The demo summit and count approved locations in the cluster's database."""
    database = Database(database_url)
    try:
        with database.session() as db:
            summit = seed_demo(db, start=datetime.now(UTC).date()).summit
            inputs = [
                locations.LocationInput(label=f"Hall {i}", country=("DE", "KE", "BR")[i % 3])
                for i in range(count)
            ]
            made = locations.register_locations_bulk(
                db, summit, inputs, links=LinkSecrets(secret_key)
            )
    finally:
        database.dispose()
    return [SimulatedLocation(m.location_id, m.secret) for m in made]


class Screens:
    """One load-tool client process holding every location's presence socket until stopped."""

    def __init__(self, base_url: str, crowd: list[SimulatedLocation], ramp_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.report: Any = context.Queue()
        plan = ClientPlan(
            index=0,
            ws_url=base_url.replace("http://", "ws://", 1) + "/live/ws",
            source="127.0.0.2",
            locations=tuple(crowd),
            start_at=time.time() + 2.0,  # the spawned interpreter's start-up
            ramp_s=ramp_s,
            duration_s=3600.0,  # stopped by stop(), bounded anyway
            seed=secrets.randbits(32),
        )
        self.process = context.Process(target=run_client, args=(plan, self.report), daemon=True)
        self.latest: dict[str, Any] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        """Start the client process and the reader of its counters."""
        self.process.start()
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                kind, _, payload = self.report.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "tick":
                self.latest = payload
            elif kind == "failed":
                self.latest = {**self.latest, "failed": payload}

    def counter(self, name: str) -> int:
        """The clients' latest count of name (online, reconnects, lost…), updated each second."""
        return int(self.latest.get(name, 0))

    def stop(self) -> None:
        """Stop the client process (its sockets close with it)."""
        self._stop.set()
        self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._reader.join(timeout=5)


def total(base_url: str) -> int | None:
    """The online total of the summit's public figures at base_url (None: no 200 answer)."""
    try:
        response = httpx.get(f"{base_url}/live/s/{SLUG}/figures.json", timeout=5)
    except httpx.TransportError:
        return None
    return int(response.json()["total"]) if response.status_code == 200 else None


def wait_for(check: Callable[[], bool], timeout_s: float, what: Callable[[], str] | str) -> float:
    """Poll check every 0.1 s; the seconds it took, or an AssertionError naming what."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what() if callable(what) else what}")
        time.sleep(0.1)
    return time.monotonic() - started


def heartbeat(
    client: httpx.Client, screen: SimulatedLocation, epoch: str, seq: int
) -> httpx.Response:
    """One signed heartbeat over HTTP (the socket's fallback) for screen, seq within epoch."""
    beat = sign_heartbeat(screen.secret.encode(), screen.location_id, epoch, seq, int(time.time()))
    return client.post("/live/heartbeat", content=json.dumps({"token": encode_heartbeat(beat)}))


class Traffic:
    """Pages, a probe screen's heartbeats and registrations through the balancer, in a thread."""

    def __init__(self, base_url: str, probe: SimulatedLocation) -> None:
        self.base_url = base_url
        self.probe = probe
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def finish(self) -> Tally:
        """Stop and return what was answered."""
        self._stop.set()
        self._thread.join(timeout=60)
        return self.tally

    def _run(self) -> None:
        epoch = secrets.token_urlsafe(12)  # a page load of its own: seq starts at 0 again
        with httpx.Client(base_url=self.base_url, timeout=20) as client:
            seq = 0
            while not self._stop.is_set():
                try:
                    self.tally.note("page", client.get(f"/s/{SLUG}"))
                    self.tally.note("heartbeat", heartbeat(client, self.probe, epoch, seq))
                    self._register(client, seq)
                except httpx.TransportError:
                    with self.tally.lock:
                        self.tally.refused += 1
                seq += 1
                time.sleep(0.1)

    def _register(self, client: httpx.Client, n: int) -> None:
        # The session cookie is Secure (the nodes run in production) and this is plain
        # HTTP on loopback, where httpx would not send it back: carry it by hand.
        form = client.get(f"/s/{SLUG}/register")
        self.tally.note("register form", form)
        match = CSRF.search(form.text) if form.status_code == 200 else None
        if match is None:
            return
        cookies = "; ".join(f"{k}={v}" for k, v in form.cookies.items())
        answer = client.post(
            f"/s/{SLUG}/register",
            data={**REGISTER_FORM, "label": f"Cluster {n}", "csrf_token": match.group(1)},
            headers={"cookie": cookies},
        )
        self.tally.note("register", answer, ok=(303,))
        if answer.status_code == 303:
            with self.tally.lock:
                self.tally.registered.append(answer.headers["location"].rsplit("/", 1)[1])
