"""The request's unit of work: committed before the answer starts, not after it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitcast.domain.accounts import Role
from summitcast.storage.database import Database
from summitcast.storage.tables import Session
from tests.conftest import PASSWORD, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration


class CountAtAnswer:
    """Passes every call to the app; counts sessions in the database as each answer starts."""

    def __init__(self, app: ASGIApp, database: Database) -> None:
        self.app = app
        self.database = database
        self.counts: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probe(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                # Another connection, as the client's next request would use.
                with self.database.session() as db:
                    self.counts.append(db.scalar(select(func.count()).select_from(Session)) or 0)
            await send(message)

        await self.app(scope, receive, probe)


@pytest.fixture
def probed(app, database: Database) -> Iterator[tuple[TestClient, CountAtAnswer]]:  # type: ignore[no-untyped-def]
    """An organiser's API client whose app records what the database holds at each answer."""
    user = make_user(database, "org@example.org")
    grant(database, user, make_summit(database), Role.ORGANISER)
    wrapper = CountAtAnswer(app, database)
    with TestClient(wrapper, base_url="http://127.0.0.1") as client:
        client.headers["x-csrf-token"] = log_in(client, "org@example.org")
        wrapper.counts.clear()
        yield client, wrapper


def test_write_is_committed_before_its_answer_starts(
    probed: tuple[TestClient, CountAtAnswer],
) -> None:
    client, wrapper = probed

    created = client.post(
        "/api/summits/test-summit/sessions",
        json={
            "title": "Opening",
            "planned_start": "2027-07-17T18:00:00+02:00",
            "planned_end": "2027-07-17T19:00:00+02:00",
        },
    )

    assert created.status_code == 201, created.text
    assert wrapper.counts == [1]


def test_refused_write_leaves_nothing_behind(probed: tuple[TestClient, CountAtAnswer]) -> None:
    client, wrapper = probed

    refused = client.post(
        "/api/summits/test-summit/sessions",
        json={
            "title": "Backwards",
            "planned_start": "2027-07-17T19:00:00+02:00",
            "planned_end": "2027-07-17T18:00:00+02:00",
        },
    )

    assert 400 <= refused.status_code < 500, refused.text
    assert wrapper.counts == [0]


def test_more_requests_than_connections_all_answer(app, database: Database) -> None:  # type: ignore[no-untyped-def]
    """Ten times the pool's connections at once: every request is answered, none waits it out."""
    user = make_user(database, "org@example.org")
    grant(database, user, make_summit(database), Role.ORGANISER)

    async def read_all() -> tuple[list[int], float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/login")
            token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            logged_in = await client.post(
                "/login",
                data={"email": "org@example.org", "password": PASSWORD, "csrf_token": token},
            )
            assert logged_in.status_code == 303, logged_in.text
            started = time.monotonic()
            # Each read holds its connection across the actor and summit dependencies'
            # thread hops; without the request slots they starved the thread pool.
            answers = await asyncio.gather(
                *(
                    client.get("/api/summits/test-summit/sessions")
                    for _ in range(database.capacity * 10)
                )
            )
            return [a.status_code for a in answers], time.monotonic() - started

    codes, took = asyncio.run(read_all())
    assert set(codes) == {200}
    assert took < 25, f"{len(codes)} reads took {took:.1f} s"
