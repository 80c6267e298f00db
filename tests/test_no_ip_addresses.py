"""No raw IP address kept: after registrations and heartbeats, scan every table and the logs."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import JSON, String, Text, select

from summitcast.domain.accounts import Role
from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.storage.database import Database
from summitcast.storage.tables import Base, Location
from tests.conftest import TEST_LINKS, csrf_of, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

CLIENT_V4 = "203.0.113.77"  # TEST-NET-3: documentation addresses, never routed
CLIENT_V6 = "2001:db8::1:77"
_V4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_V6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")


def addresses_in(text: str) -> list[str]:
    """Everything in the text that parses as an IPv4 or IPv6 address."""
    found: list[str] = []
    for pattern in (_V4, _V6):
        for match in pattern.findall(text):
            try:
                ipaddress.ip_address(match)
            except ValueError:
                continue
            found.append(match)
    return found


def test_addresses_in_finds_both_families_and_skips_times() -> None:
    text = f"from {CLIENT_V4} and [{CLIENT_V6}] at 10:00:00, v1.2.3 and 48.85/2.35"

    assert addresses_in(text) == [CLIENT_V4, CLIENT_V6]


def _exercise(client: TestClient, database: Database) -> None:
    """Registrations, approval, heartbeats over both transports, refused ones too."""
    make_summit(database)
    for n in range(3):
        token = csrf_of(client)
        client.post(
            "/s/test-summit/register",
            data={
                "label": f"Hall {n}",
                "country": "KE",
                "city": "Nairobi",
                "kind": "hall",
                "expected_audience": "10",
                "csrf_token": token,
            },
        )
    client.post("/s/test-summit/register", data={"label": "bot", "website": "x"})
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        locations = list(db.scalars(select(Location).order_by(Location.id)))
        summit = locations[0].summit
    grant(database, organiser, summit, Role.ORGANISER)
    csrf = log_in(client, "org@example.org")
    client.post(
        "/backstage/s/test-summit/locations/approve",
        data={"ids": [str(loc.id) for loc in locations[:2]], "csrf_token": csrf},
    )
    now = int(time.time())
    for n, location in enumerate(locations):
        secret = TEST_LINKS.open(location).encode()
        hb = sign_heartbeat(secret, location.public_id, "epoch-one", 0, now)
        client.post("/live/heartbeat", content=json.dumps({"token": encode_heartbeat(hb)}))
        with client.websocket_connect("/live/ws") as ws:
            ws.receive_json()
            hb = sign_heartbeat(secret, location.public_id, "epoch-two", n, now)
            ws.send_json({"type": "hb", "token": encode_heartbeat(hb)})
            ws.send_json({"type": "hb", "token": encode_heartbeat(hb)})  # a replay: refused
            ws.receive_json()
    client.get("/backstage/s/test-summit/dashboard")
    client.get("/backstage/s/test-summit/locations.csv")


@pytest.fixture(params=[CLIENT_V4, CLIENT_V6])
def addressed_client(request: pytest.FixtureRequest, app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client that connects from a real-looking address."""
    # A host name, not 127.0.0.1: the test client logs its own requests with the URL.
    base = "http://summit.test"
    with TestClient(app, base_url=base, client=(request.param, 51234)) as client:
        yield client


def test_no_ip_address_in_database_or_logs(
    addressed_client: TestClient,
    app,  # type: ignore[no-untyped-def]
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    _exercise(addressed_client, database)
    # Arrivals are written by a background task every second: write what is left now.
    addressed_client.portal.call(app.state.live.flush_transitions)  # type: ignore[union-attr]

    found: dict[str, list[str]] = {}
    with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in conn.execute(select(*columns)) if columns else []:
                for column, value in zip(columns, row, strict=True):
                    text = json.dumps(value) if not isinstance(value, str) else value
                    if hits := addresses_in(text):
                        found.setdefault(f"{table.name}.{column.name}", []).extend(hits)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    if hits := addresses_in(logged):
        found["logs"] = hits
    limiter = app.state.registration_limiter
    memory = repr(limiter._hits) + repr(app.state.login_limiter._hits)

    assert found == {}
    assert len(limiter._hits) == 1  # the client was counted, under a hash
    assert CLIENT_V4 not in memory
    assert CLIENT_V6 not in memory
    with database.session() as db:
        online = [
            loc.last_online_at is not None
            for loc in db.scalars(select(Location).order_by(Location.id))
        ]
    assert online == [True, True, False]
