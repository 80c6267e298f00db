"""Shared pieces of the fuzz tests: budgets, a seeded summit and an organiser's session."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import select

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services import programme
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Session, Speaker, Summit
from tests.conftest import PASSWORD, grant, make_summit, make_user, scratch_postgres

# Short budgets for `make test`; benchmarks/fuzz_long.py raises them (SUMMITCAST_FUZZ_EXAMPLES).
EXAMPLES = int(os.environ.get("SUMMITCAST_FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(examples: int) -> settings:
    """Reproducible Hypothesis settings: derandomized, no example database, no deadline."""
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        derandomize=True,
        database=None,
        # Each example is a real request against a real database: slow by Hypothesis' measure.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )


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
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
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
    with database.session() as db:
        found = programme.get_summit(db, "fuzz")
        session = programme.add_session(
            db,
            found,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 12, tzinfo=UTC),
            ),
        )
        programme.add_item(db, session, programme.ItemInput(title="Welcome"))
        programme.add_speaker(db, found, programme.SpeakerInput(name="Ada"))


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
