"""A summitcast app in its own uvicorn process on a free loopback port, for browser tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.accounts import Role
from summitcast.services import accounts, programme
from summitcast.storage.tables import Summit
from tests.conftest import PASSWORD
from tests.e2e.conftest import free_port


@dataclass(frozen=True)
class AppServer:
    """A running summitcast server and where it keeps its data."""

    base_url: str
    database_url: str
    log: Path


@contextmanager
def app_server(
    data: Path, env: Mapping[str, str] | None = None, *, host_name: str = "127.0.0.1"
) -> Iterator[AppServer]:
    """Serve the app from ``data`` (SQLite there) with ``env`` on top of test settings.

    ``host_name`` is the host of its base URL ("localhost" for passkeys: an IP address
    cannot be a WebAuthn relying party); it listens on 127.0.0.1 either way.
    """
    port = free_port()
    base = f"http://{host_name}:{port}"
    full_env = {
        # The developer's own SUMMITCAST_* settings (a database URL, Redis) stay out.
        **{k: v for k, v in os.environ.items() if not k.startswith("SUMMITCAST_")},
        "PYTHONUNBUFFERED": "1",
        "SUMMITCAST_ENVIRONMENT": "test",
        "SUMMITCAST_SECRET_KEY": secrets.token_urlsafe(48),
        "SUMMITCAST_DATA_DIR": str(data),
        "SUMMITCAST_BASE_URL": base,
        **(env or {}),
    }
    log = data / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "summitcast.app:app_from_environment"),
                *("--factory", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
                # As `summitcast serve`: location screens' sockets on the callback-only protocol.
                *("--ws", "summitcast.web.transport.presence_socket:PresenceWebSockets"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=data,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"server did not start:\n{log.read_text()}")
        yield AppServer(base, f"sqlite:///{(data / 'summitcast.db').resolve()}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def seed_world_summit(db: DbSession, organiser: str) -> Summit:
    """The summit 'world' (17–20 July 2027, UTC) and an organiser of it with the test password."""
    summit = programme.create_summit(
        db,
        programme.SummitInput(
            slug="world",
            title="World Summit",
            time_zone="UTC",
            start_date=date(2027, 7, 17),
            end_date=date(2027, 7, 20),
        ),
    )
    user = accounts.create_user(db, email=organiser, password=PASSWORD)
    accounts.grant_role(db, user=user, summit=summit, role=Role.ORGANISER)
    return summit
