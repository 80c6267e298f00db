"""Shared fixtures: real SQLite and PostgreSQL databases, the app in-process, logged-in clients."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services import accounts, programme
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from summitcast.storage.tables import Base, Summit, User

PASSWORD = "correct horse battery staple"
POSTGRES_ADMIN_URL = os.environ.get(
    "SUMMITCAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def service_missing(what: str, detail: str) -> None:
    """Skip on a developer's machine, fail in CI: CI must really run every back-end."""
    message = f"{what} is unreachable ({detail})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run these tests", pytrace=False)
    pytest.skip(message)


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of the caller's own, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", str(exc).strip().splitlines()[0])
        raise AssertionError("unreachable") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped at the end."""
    with scratch_postgres("summitcast_test") as url:
        migrated = Database(url)
        migrated.upgrade()
        migrated.dispose()
        yield url


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: a SQLite file, or this run's PostgreSQL database."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'summitcast.db'}")
        db.upgrade()
    else:
        db = Database(request.getfixturevalue("postgres_url"))
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield db
    db.dispose()


# The app key of the test settings, and the link secrets sealed under it.
TEST_SECRET_KEY = "test-secret-" + "x" * 32
TEST_LINKS = LinkSecrets(TEST_SECRET_KEY)


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    """Test settings: a temporary data folder and the database under test."""
    return Settings(
        environment="test",
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        database_url=database.url,
        auto_migrate=False,
        # In-process app tests press "start" on sessions: no real encoders for those.
        broadcast_workers=False,
    )


@pytest.fixture
def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    """The real app, wired to the database under test."""
    return create_app(settings, database=database)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An anonymous browser-like client talking to the app in-process."""
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def csrf_of(client: TestClient) -> str:
    """Fetch a page and read the session's CSRF token from its meta tag."""
    page = client.get("/login")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, "no CSRF meta tag on the login page"
    return match.group(1)


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Log the client in through the form; returns the new session's CSRF token."""
    token = csrf_of(client)
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client)


def make_user(database: Database, email: str, *, is_admin: bool = False) -> User:
    """A user with the shared test password."""
    with database.session() as db:
        return accounts.create_user(db, email=email, password=PASSWORD, is_admin=is_admin)


def make_summit(database: Database, slug: str = "test-summit", **fields: object) -> Summit:
    """A summit of four days in Europe/Berlin."""
    values: dict[str, object] = {
        "slug": slug,
        "title": f"Summit {slug}",
        "time_zone": "Europe/Berlin",
        "start_date": date(2027, 7, 17),
        "end_date": date(2027, 7, 20),
        "languages": ("en", "fr"),
    }
    values.update(fields)
    with database.session() as db:
        return programme.create_summit(db, programme.SummitInput(**values))  # type: ignore[arg-type]


def grant(database: Database, user: User, summit: Summit, role: Role) -> None:
    """Give a user a role in a summit."""
    with database.session() as db:
        accounts.grant_role(
            db,
            user=db.get(User, user.id),
            summit=db.get(Summit, summit.id),
            role=role,  # type: ignore[arg-type]
        )
