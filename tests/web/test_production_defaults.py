"""Production's safe defaults in the app: Secure cookie, HSTS, forwarded clients, at-risk hosts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from tests.conftest import csrf_of, make_summit

pytestmark = pytest.mark.integration

SITE = "https://summit.example.org"
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of this test's own."""
    db = Database(f"sqlite:///{tmp_path / 'summitcast.db'}")
    db.upgrade()
    yield db
    db.dispose()


@contextmanager
def _client(
    tmp_path: Path, database: Database, *, peer: str = "127.0.0.1", **fields: Any
) -> Iterator[TestClient]:
    settings = Settings(
        secret_key="test-secret-" + "x" * 32,  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        database_url=database.url,
        auto_migrate=False,
        broadcast_workers=False,
        job_workers=False,
        **fields,
    )
    app = create_app(settings, database=database)
    # Not entered: no lifespan (sweepers, the city index) is needed for these requests.
    client = TestClient(app, base_url=SITE, client=(peer, 5000))
    try:
        yield client
    finally:
        client.close()


def test_production_cookie_is_secure_httponly_and_lax_with_hsts_everywhere(
    tmp_path: Path, sqlite: Database
) -> None:
    with _client(tmp_path, sqlite, environment="production", base_url=SITE) as client:
        page = client.get("/login")
        heartbeat = client.post("/live/heartbeat", content=b"{}")  # the fast path
        missing = client.get("/no/such/page")

    cookie = page.headers["set-cookie"]
    assert cookie.startswith("summitcast_session=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags
    assert [r.headers.get("strict-transport-security") for r in (page, heartbeat, missing)] == [
        HSTS
    ] * 3


def test_development_cookie_is_not_secure_and_has_no_hsts(tmp_path: Path, sqlite: Database) -> None:
    with _client(tmp_path, sqlite) as client:
        page = client.get("/login")

    flags = {part.strip().lower() for part in page.headers["set-cookie"].split(";")[1:]}
    assert "secure" not in flags
    assert {"httponly", "samesite=lax"} <= flags
    assert "strict-transport-security" not in page.headers


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_its_login_limit(
    tmp_path: Path, sqlite: Database
) -> None:
    # The peer is not one of the trusted proxies: whatever it forwards, it is one client.
    with _client(
        tmp_path,
        sqlite,
        peer="192.0.2.10",
        trusted_proxies="10.0.0.0/8",
        login_attempts_per_15_min=3,
    ) as client:
        token = csrf_of(client)
        answers = [
            client.post(
                "/login",
                data={"email": f"x{n}@example.org", "password": "wrong", "csrf_token": token},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(4)
        ]

    assert answers == [401, 401, 401, 429]


def _register(client: TestClient, country: str, privacy_level: str = "") -> Location:
    token = csrf_of(client)
    response = client.post(
        "/s/test-summit/register",
        data={
            "label": f"Hall in {country} {privacy_level}",
            "country": country,
            "city": "",
            "kind": "hall",
            "expected_audience": "20",
            "privacy_level": privacy_level,
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    public_id = response.headers["location"].rsplit("/", 1)[-1]
    with client.app.state.database.session() as db:  # type: ignore[attr-defined]
        return db.query(Location).filter_by(public_id=public_id).one()


def test_host_in_a_shipped_at_risk_country_is_steered_to_country_only(
    tmp_path: Path, sqlite: Database
) -> None:
    make_summit(sqlite)
    with _client(tmp_path, sqlite) as client:  # SUMMITCAST_AT_RISK_COUNTRIES not set
        page = client.get("/s/test-summit/register")
        iran = _register(client, "IR")
        kenya = _register(client, "KE")
        chosen = _register(client, "BY", "public")  # the host may still choose the city

    # The form's default choice is the recommendation for the country.
    assert re.search(r'value="" checked> Recommended for my country', page.text)
    assert [iran.privacy_level, kenya.privacy_level, chosen.privacy_level] == [
        "country",
        "public",
        "public",
    ]


def test_at_risk_default_turned_off_leaves_the_city_public(
    tmp_path: Path, sqlite: Database
) -> None:
    make_summit(sqlite)
    with _client(tmp_path, sqlite, at_risk_countries="none") as client:
        iran = _register(client, "IR")

    assert iran.privacy_level == "public"
