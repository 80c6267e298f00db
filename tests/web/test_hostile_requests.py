"""Hostile requests to every route, anonymous and logged in, on SQLite and PostgreSQL: never 5xx.

The walk reads the app's route table (app.ROUTERS), so a route added later is covered. Each
path and query parameter of each route gets NUL bytes, ids past the database's integers,
overlong and wrong-typed values; every answer must be below 500 and the log must hold no
traceback afterwards. Text fields get NUL and control characters on both databases.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from summitcast.app import ROUTERS
from summitcast.domain.accounts import Role
from summitcast.services import programme
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from summitcast.web.edge import MAX_ROW_ID
from tests.conftest import csrf_of, grant, log_in, make_summit, make_user
from tests.web import hostile

pytestmark = pytest.mark.integration


def _secret(app: FastAPI) -> bytes:
    return app.state.settings.secret_key.get_secret_value().encode()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info or "Traceback" in record.getMessage()
    ]


async def _walk(
    app: FastAPI, target: dict[str, str], own: dict[str, str]
) -> tuple[int, list[tuple[str, str, str, int]]]:
    """Send the walk anonymous (values of a summit not theirs) and as an organiser (their own)."""
    routes = hostile.every_route(list(app.routes))
    assert len(routes) >= 100, "the walk found too few routes: it is broken"
    failures = []
    sent = 0
    # In one event loop, not through TestClient's thread portal (a third faster), and
    # without the app's background tasks, which no hostile value reaches.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for who, values in (("anonymous", target), ("organiser", own)):
            if who == "anonymous":
                # A CSRF token of its own: refused for want of a login, not of a token.
                token = await hostile.csrf_token_of(client)
            else:
                token = await hostile.log_in(client, "outsider@example.org")
            requests = hostile.hostile_requests(routes, values, logged_in=who == "organiser")
            for method, url in requests:
                response = await client.request(method, url, headers={"x-csrf-token": token})
                sent += 1
                if response.status_code >= 500:
                    failures.append((who, method, url[:120], response.status_code))
    return sent, failures


def test_hostile_path_and_query_values_never_answer_5xx(
    app: FastAPI, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    target = hostile.summit_with_objects(database, "target", _secret(app))
    # The outsider organises "elsewhere": in their own summit the hostile value gets past
    # the role check and reaches the handler, beside valid ids of their own objects.
    own = hostile.summit_with_objects(database, "elsewhere", _secret(app))
    outsider = make_user(database, "outsider@example.org")
    with database.session() as db:
        elsewhere = programme.get_summit(db, "elsewhere")
    grant(database, outsider, elsewhere, Role.ORGANISER)

    started = time.perf_counter()
    sent, failures = asyncio.run(_walk(app, target, own))

    assert failures == []
    assert _tracebacks(caplog) == []
    assert sent >= 500
    print(f"{sent} hostile requests in {time.perf_counter() - started:.1f} s")


def test_every_id_in_a_path_is_bounded_by_the_database_integer() -> None:
    unbounded = []
    for route in [r for router in ROUTERS for r in router.routes]:
        if not isinstance(route, APIRoute):
            continue
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            pending += dependant.dependencies
            for param in dependant.path_params + dependant.query_params:
                if param.field_info.annotation not in (int, int | None):
                    continue
                bounds = {type(m).__name__: m for m in param.field_info.metadata}
                lowest = getattr(bounds.get("Ge"), "ge", None)
                highest = getattr(bounds.get("Le"), "le", None)
                if lowest is None or highest is None or highest > MAX_ROW_ID or lowest < 0:
                    unbounded.append((route.path, param.name))
    assert unbounded == []


def test_hostile_slugs_on_sockets_are_refused_without_tracebacks(
    client: TestClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    paths = [p for p in hostile.socket_paths(list(app.routes)) if "{slug}" in p]
    assert paths, "no WebSocket route with a slug found"
    for path in paths:
        for bad in [*hostile.NUL, *hostile.HUGE, "a" * 5000, "b" * 300, "../x", "Ünï"]:
            url = hostile.fill(path, {}, ("slug", bad))
            with pytest.raises(WebSocketDisconnect), client.websocket_connect(url) as socket:
                socket.receive_text()
    assert _tracebacks(caplog) == []


# Text fields: a NUL (PostgreSQL refuses it in text) or another control character in what
# a person types. Tab, line feed and carriage return are ordinary text.
BAD_TEXT = ["Ann\x00", "Ann\x01", "Ann\x1b[31m", "\x7f"]


def test_control_characters_in_text_fields_are_refused_and_store_nothing(
    client: TestClient, database: Database
) -> None:
    organiser = make_user(database, "org@example.org")
    grant(database, organiser, make_summit(database, "target"), Role.ORGANISER)
    anonymous = csrf_of(client)
    answers = []
    places = []
    for bad in BAD_TEXT:
        login = {"email": f"org@example.org{bad}", "password": "x", "csrf_token": anonymous}
        place = {"label": f"Town hall {bad}", "country": "DE", "csrf_token": anonymous}
        answers.append(client.post("/login", data=login, follow_redirects=False))
        # The registration form checks its own text: the form again, the field marked.
        places.append(client.post("/s/target/register", data=place, follow_redirects=False))
    # Multipart bodies are not read by the edge: the database refuses the NUL on
    # PostgreSQL (400, not 500), and on SQLite no user has that address (login refused).
    multipart = client.post(
        "/login",
        files={k: (None, v) for k, v in {**login, "email": "org@example.org\x00"}.items()},
        follow_redirects=False,
    )
    token = log_in(client, "org@example.org")
    for bad in BAD_TEXT:
        answers += [
            client.post(
                "/backstage/s/target/speakers",
                data={"name": bad, "csrf_token": token},
                headers={"accept": "text/html"},
                follow_redirects=False,
            ),
            client.post(
                "/api/summits/target/speakers",
                json={"name": bad},
                headers={"x-csrf-token": token},
            ),
        ]
    # Tab, CR LF, and a backslash-u typed as text are kept.
    bio = "Line one\r\nLine\ttwo, and \\u0000 typed as text"
    kept = client.post(
        "/api/summits/target/speakers",
        json={"name": "Ann Lee", "bio": bio},
        headers={"x-csrf-token": token},
    )

    assert [a.status_code for a in answers] == [400] * len(answers)
    assert [p.status_code for p in places] == [422] * len(places)
    assert all('data-field="label"' in p.text for p in places)
    assert all("control character" in a.text for a in answers)
    assert "<html" in answers[-2].text  # a page for the browser's form
    assert "control character" in answers[-1].json()["detail"]  # JSON for the API
    assert 400 <= multipart.status_code < 500
    assert kept.status_code == 201, kept.text
    with database.session() as db:
        assert db.scalars(select(Location)).all() == []
        assert [s.bio for s in programme.get_summit(db, "target").speakers] == [bio]
