"""Shared pieces of the fuzz tests: budgets, a seeded summit and an organiser's session."""

from __future__ import annotations

import re
import time as clock
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, settings
from sqlalchemy import select

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services import programme
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Session, Speaker, Summit
from tests.conftest import PASSWORD, grant, make_summit, make_user, scratch_postgres


def fuzz_settings(examples: int, *, randomize: bool = False) -> settings:
    """Hypothesis settings: derandomized (reproducible in CI) unless asked, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=not randomize,
        database=None,
        # Each example is a real request against a real database: slow by Hypothesis' measure.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )


@dataclass(slots=True)
class Run:
    """One fuzzer's budget and tally: `make test` runs it short, benchmarks/fuzz_long.py long."""

    examples: int
    randomize: bool = False
    # clock.monotonic() past which no further Hypothesis run starts (long runs are bounded).
    until: float | None = None
    sent: int = 0
    failures: list[str] = field(default_factory=list)

    def settings(self, examples: int | None = None) -> settings:
        """Settings for one Hypothesis run of this fuzzer."""
        return fuzz_settings(examples or self.examples, randomize=self.randomize)

    def chunks(self, size: int = 500) -> Iterator[int]:
        """Example counts of successive Hypothesis runs adding up to run.examples, in time."""
        left = self.examples
        while left > 0 and not self.out_of_time():
            yield min(size, left)
            left -= size

    def out_of_time(self) -> bool:
        """Whether the time of a bounded run is over."""
        return self.until is not None and clock.monotonic() > self.until

    def check(self, response: Response, what: str) -> None:
        """Count one request; note it when it was answered 500 or more."""
        self.sent += 1
        if response.status_code >= 500:
            self.failures.append(f"{what}: {response.status_code} {response.text[:200]!r}")


@dataclass(frozen=True, slots=True)
class Organiser:
    """A logged-in organiser's session cookie and CSRF token."""

    cookies: dict[str, str]
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        """The headers an API client of this session sends on unsafe requests."""
        return {"X-CSRF-Token": self.csrf}


@dataclass(frozen=True, slots=True)
class World:
    """One app over one database with a seeded summit, shared by the fuzz tests of a run."""

    app: FastAPI
    database: Database
    organiser: Organiser

    def client(self) -> TestClient:
        """An organiser's client that sees a 500 as an answer (enter it to run the lifespan)."""
        client = TestClient(self.app, base_url="http://testserver", raise_server_exceptions=False)
        for name, value in self.organiser.cookies.items():
            # The domain the test client gives its own cookies, so the server's replace it.
            client.cookies.set(name, value, domain="testserver.local")
        client.headers["X-CSRF-Token"] = self.organiser.csrf
        return client


@pytest.fixture(
    scope="package",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A migrated database of the fuzz tests' own (one per back-end), its app and organiser."""
    # Package scope: migrating and seeding once per back-end keeps the fuzzing within budget.
    with open_world(request.param, tmp_path_factory.mktemp(f"fuzz-{request.param}")) as world:
        yield world


@contextmanager
def open_world(backend: str, folder: Path) -> Iterator[World]:
    """A new SQLite file or PostgreSQL database, migrated and seeded, with its app."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'summitcast.db'}"
        else:
            url = stack.enter_context(scratch_postgres("summitcast_fuzz"))
        database = Database(url)
        stack.callback(database.dispose)
        database.upgrade()
        settings = Settings(
            environment="test",
            secret_key="test-secret-" + "x" * 32,
            data_dir=folder / "data",
            database_url=url,
            auto_migrate=False,
            broadcast_workers=False,
            # Past the hourly cap every registration would be a 429 that never reaches a check.
            registrations_per_hour=1_000_000,
        )
        app = create_app(settings, database=database)
        seed_world(database)
        world = World(app=app, database=database, organiser=log_in_organiser(app))
        # Fuzzing as nobody would prove little: the session must pass CSRF and the role check.
        probe = world.client().post("/api/summits/fuzz/speakers", json={"name": "Probe"})
        assert probe.status_code == 201, probe.text
        yield world


def seed_world(database: Database) -> None:
    """The summit 'fuzz' with one session, item and speaker, and its organiser."""
    summit = make_summit(database, "fuzz")
    organiser = make_user(database, "organiser@fuzz.example")
    grant(database, organiser, summit, Role.ORGANISER)
    replenish(database)


def replenish(database: Database) -> None:
    """Give the first summit a session, an item and a speaker again if fuzzing deleted them."""
    with database.session() as db:
        summit = db.scalar(select(Summit).order_by(Summit.id).limit(1))
        assert summit is not None, "the seeded summit is gone"
        sessions = programme.programme_of(db, summit)
        if not sessions:
            # Noon on the summit's first day in its own zone: inside whatever dates it has now.
            noon = datetime.combine(summit.start_date, time(12), ZoneInfo(summit.time_zone))
            sessions = [
                programme.add_session(
                    db,
                    summit,
                    programme.SessionInput(
                        title="Opening", planned_start=noon, planned_end=noon + timedelta(hours=1)
                    ),
                )
            ]
        if not any(session.items for session in sessions):
            programme.add_item(db, sessions[0], programme.ItemInput(title="Welcome"))
        if not summit.speakers:
            programme.add_speaker(db, summit, programme.SpeakerInput(name="Ada"))


def log_in_organiser(app: FastAPI) -> Organiser:
    """Log the seeded organiser in through the real form; no lifespan is started for it."""
    client = TestClient(app, base_url="http://testserver")
    token = _csrf(client)
    response = client.post(
        "/login",
        data={"email": "organiser@fuzz.example", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    csrf = _csrf(client)  # stored in the session: the cookie is read after it
    return Organiser(cookies=dict(client.cookies.items()), csrf=csrf)


def _csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text)
    assert match, "no CSRF meta tag on the login page"
    return match.group(1)


def real_ids(database: Database) -> dict[str, str]:
    """Path parameters that name objects that exist now (fuzzing renames and deletes them)."""
    found: dict[str, str] = {}
    with database.session() as db:
        summit = db.scalar(select(Summit).order_by(Summit.id).limit(1))
        if summit is None:
            return found
        found["slug"] = summit.slug
        for name, table in (("session_id", Session), ("speaker_id", Speaker)):
            row = db.scalar(select(table.id).where(table.summit_id == summit.id).limit(1))
            if row is not None:
                found[name] = str(row)
        item = db.scalar(
            select(Item.id).join(Session).where(Session.summit_id == summit.id).limit(1)
        )
        if item is not None:
            found["item_id"] = str(item)
    return found
