"""Behind a trusted proxy on 127.0.0.1: rate limits per forwarded client and per account."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.services import accounts
from summitcast.storage.database import Database
from tests.conftest import PASSWORD
from tests.e2e.app_server import seed_world_summit
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

STAFF = "organiser@example.org"
OTHER = "producer@example.org"
DELAY_CAP_S = 1.0  # the per-account wait's cap, small here (60 s by default)


class ForwardedClient:
    """One person's browser as the app sees it through the proxy: their address in X-F-F."""

    # The test plays the proxy: it connects from 127.0.0.1 and appends the client's
    # address, as nginx's $proxy_add_x_forwarded_for does. The session cookie is Secure,
    # which an http:// cookie jar would not send back, so it is carried by hand.

    def __init__(self, http: httpx.Client, address: str, *, spoofed: str = "") -> None:
        self.http = http
        self.forwarded_for = f"{spoofed}, {address}" if spoofed else address
        self.cookie = ""

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """Send a request as this client, keeping its session cookie."""
        headers = {"X-Forwarded-For": self.forwarded_for, "X-Forwarded-Proto": "https"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        response = self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        set_cookie = response.headers.get("set-cookie", "")
        if set_cookie.startswith("summitcast_session="):
            self.cookie = set_cookie.split(";", 1)[0]
        return response

    def csrf(self, path: str = "/login") -> str:
        """The session's CSRF token, read from a page."""
        match = re.search(r'name="csrf-token" content="([^"]+)"', self.request("GET", path).text)
        assert match, path
        return match.group(1)

    def log_in(self, email: str, password: str) -> httpx.Response:
        """Post the login form."""
        data = {"email": email, "password": password, "csrf_token": self.csrf()}
        return self.request("POST", "/login", data=data)

    def register(self, label: str) -> httpx.Response:
        """Register a watch location in summit 'world'."""
        data = {
            "label": label,
            "country": "KE",
            "kind": "hall",
            "expected_audience": "10",
            "csrf_token": self.csrf("/s/world/register"),
        }
        return self.request("POST", "/s/world/register", data=data)


@dataclass(frozen=True)
class Served:
    """The app served by a real uvicorn on a loopback port."""

    base_url: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app in production mode behind a trusted proxy on 127.0.0.1, on a real socket."""
    data: Path = tmp_path_factory.mktemp("proxy")
    port = free_port()
    settings = Settings(
        environment="production",
        secret_key=secrets.token_urlsafe(48),  # type: ignore[arg-type]
        base_url=f"http://127.0.0.1:{port}",  # TLS ends at the proxy
        trusted_proxies="127.0.0.1",  # type: ignore[arg-type]
        data_dir=data,
        broadcast_workers=False,
        job_workers=False,
        login_account_delay_s=0.25,
        login_account_delay_max_s=DELAY_CAP_S,
        registrations_per_hour=2,
    )
    database = Database(settings.effective_database_url)
    app = create_app(settings, database=database)
    with database.session() as db:
        seed_world_summit(db, STAFF)
        accounts.create_user(db, email=OTHER, password=PASSWORD)
    # In this process, without the lifespan (no sweepers or city index are needed), so
    # the server is up in a moment; uvicorn's own proxy handling is off, as under
    # `summitcast serve`: the app alone reads X-Forwarded-*.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_level="warning",
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, name="proxy-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not served.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
            time.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        served.should_exit = True
        thread.join(timeout=10)
        database.dispose()


@pytest.fixture
def http(server: Served) -> Iterator[httpx.Client]:
    """Connections to the server, as from the proxy (cookies are kept per client, by hand)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def test_production_cookie_is_secure_httponly_lax_with_hsts(http: httpx.Client) -> None:
    page = ForwardedClient(http, "198.51.100.20").request("GET", "/login")

    flags = {part.strip().lower() for part in page.headers["set-cookie"].split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags
    assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_ten_wrong_passwords_from_one_client_do_not_stop_another(http: httpx.Client) -> None:
    attacker = ForwardedClient(http, "198.51.100.7")
    wrong = [attacker.log_in(STAFF, f"guess {n}").status_code for n in range(10)]
    # The attacker is now out, even with a right password, even naming another address
    # to the left of its own (the proxy appends the real one).
    locked = attacker.log_in(OTHER, PASSWORD)
    spoofing = ForwardedClient(http, "198.51.100.7", spoofed="203.0.113.5")
    spoofed = spoofing.log_in(OTHER, PASSWORD)

    # Another client, at once: its own account first, then the attacked one.
    colleague = ForwardedClient(http, "203.0.113.5")
    own = colleague.log_in(OTHER, PASSWORD)
    started = time.monotonic()
    staff = ForwardedClient(http, "203.0.113.5")
    answer = staff.log_in(STAFF, PASSWORD)
    waits = []
    while answer.status_code == 429 and time.monotonic() - started < 20:
        waits.append(int(answer.headers["retry-after"]))
        time.sleep(0.1)  # Retry-After is in whole seconds; the wait itself is shorter
        answer = staff.log_in(STAFF, PASSWORD)
    took = time.monotonic() - started

    assert set(wrong) <= {401, 429}
    assert wrong[:3] == [401, 401, 401]  # a person's typos cost no wait
    assert locked.status_code == spoofed.status_code == 429
    assert int(locked.headers["retry-after"]) > 10 * 60  # the attacker's own 15 minutes
    assert own.status_code == 303
    assert answer.status_code == 303
    assert all(wait <= DELAY_CAP_S for wait in waits)
    assert took < DELAY_CAP_S + 10  # the per-account delay, plus slack for a loaded machine


def test_registration_limit_is_per_forwarded_client(http: httpx.Client) -> None:
    first = ForwardedClient(http, "198.51.100.40")
    answers = [first.register(f"Hall {n}").status_code for n in range(3)]
    other = ForwardedClient(http, "198.51.100.41").register("Another hall")

    assert answers == [303, 303, 429]
    assert other.status_code == 303
