"""Hostile values and the walk over every route, for tests/web/test_hostile_requests.py."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from fastapi.routing import APIRoute, APIWebSocketRoute

from summitcast.app import ROUTERS
from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from tests.conftest import PASSWORD, make_summit

# What an attacker sends where an id, a slug, a token or a file name belongs. Each path
# parameter gets a NUL, one id past a database's integers and one more value in turn, so
# that over the ~190 parameters of the walk each name meets every value (rotation).
NUL = ["x\x00y", "1\x00", "\x00"]  # PostgreSQL refuses NUL in text, the kernel in paths
HUGE = [
    str(2**31),  # one past PostgreSQL's INTEGER
    str(2**63),  # one past SQLite's INTEGER (OverflowError)
]
ROTATING = [
    str(2**64),
    "-1",
    "0",
    "a" * 5000,  # past the path cap
    "b" * 300,  # past NAME_MAX, under the path cap
    "abc",
    "1.5",
    "9" * 40,
    "Ünïcödé-漢字-١",
    "../../etc/passwd",
    "..",
    "\x01\x1b[31m\x7f",
    "%00",  # sent encoded: the route sees the three characters
    " ",
]
# Server-sent event streams: with a valid path they answer and never end, so their query
# parameters are left out (their path parameters still get hostile values, refused at once).
STREAMS = frozenset({"/live/s/{slug}/public", "/backstage/s/{slug}/live"})

# Round robin: a NUL, a huge id, another value, again and again.
CYCLE = [
    value
    for i, other in enumerate(ROTATING)
    for value in (NUL[i % len(NUL)], HUGE[i % len(HUGE)], other)
]


def hostile_values(offset: int, count: int) -> list[str]:
    """`count` values of CYCLE for the offset-th parameter of the walk (so walks cover all)."""
    return [CYCLE[(offset * count + i) % len(CYCLE)] for i in range(count)]


@dataclass(frozen=True)
class Walked:
    """One route of the app as the walk sends it: method, path template, path parameters."""

    method: str
    path: str
    params: tuple[str, ...]
    query: tuple[str, ...]


def _query_params(route: APIRoute) -> tuple[str, ...]:
    names: list[str] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names += [p.alias for p in dependant.query_params]
        pending += dependant.dependencies
    return tuple(dict.fromkeys(names))


def every_route(extra_routes: list[object]) -> list[Walked]:
    """Every (method, path) of every router in app.ROUTERS (and the app's own), HEAD aside."""
    found: dict[tuple[str, str], Walked] = {}
    for route in [r for router in ROUTERS for r in router.routes] + extra_routes:
        if not isinstance(route, APIRoute):
            continue
        params = tuple(re.findall(r"\{(\w+)(?::\w+)?\}", route.path))
        for method in sorted(route.methods - {"HEAD"}):
            found[(method, route.path)] = Walked(method, route.path, params, _query_params(route))
    return sorted(found.values(), key=lambda w: (w.path, w.method))


def socket_paths(extra_routes: list[object]) -> list[str]:
    """The path template of every WebSocket route."""
    routes = [r for router in ROUTERS for r in router.routes] + extra_routes
    return sorted({r.path for r in routes if isinstance(r, APIWebSocketRoute)})


def fill(path: str, values: dict[str, str], hostile: tuple[str, str] | None = None) -> str:
    """The path with each {param} replaced (percent-encoded), one of them by a hostile value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if hostile is not None and name == hostile[0]:
            return quote(hostile[1], safe="")
        return values[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def summit_with_objects(database: Database, slug: str, secret: bytes) -> dict[str, str]:
    """A summit with a session, an item, a speaker and an invitation: valid path values."""
    make_summit(database, slug)
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="I"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="P"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=1)
        return {
            "slug": slug,
            "summit": slug,
            "session_id": str(session.id),
            "item_id": str(item.id),
            "speaker_id": str(speaker.id),
            "invitation_id": str(invitation.id),
            "token": speakers.invitation_token(invitation, secret),
            "upload_id": "no-such-upload",
            "public_id": "no-such-location",
            "name": "timeline",
            "path": "master.m3u8",
        }


def protected(walked: Walked) -> bool:
    """Whether the route needs a logged-in caller (the access tests check it refuses others)."""
    if walked.path.startswith(("/backstage", "/account")):
        return True
    return walked.path.startswith("/api/") and walked.method != "GET"


def hostile_requests(
    routes: list[Walked], values: dict[str, str], *, logged_in: bool
) -> Iterator[tuple[str, str]]:
    """(method, url) pairs: each path and query parameter of each route given hostile values.

    Logged in, every route's parameters get two values each. Anonymous, routes behind a
    login are left to the access tests (refused before a value is read), the others get
    one value each, and every route that is not a GET is sent a GET as well.
    """
    offsets = itertools.count()
    count = 2 if logged_in else 1
    for walked in routes:
        if not logged_in and walked.method != "GET":
            yield (
                "GET",
                fill(walked.path, values, (walked.params[-1], NUL[0]) if walked.params else None),
            )
        if not logged_in and protected(walked):
            continue
        for param in walked.params:
            for bad in hostile_values(next(offsets), count):
                yield walked.method, fill(walked.path, values, (param, bad))
        for name in () if walked.path in STREAMS else walked.query:
            for bad in hostile_values(next(offsets), count):
                yield walked.method, f"{fill(walked.path, values)}?{name}={quote(bad, safe='')}"


async def csrf_token_of(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, read from the login page's meta tag."""
    page = await client.get("/login")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, "no CSRF meta tag on the login page"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, email: str) -> str:
    """Log the client in through the form; the new session's CSRF token."""
    token = await csrf_token_of(client)
    form = {"email": email, "password": PASSWORD, "csrf_token": token}
    response = await client.post("/login", data=form)
    assert response.status_code == 303, response.text
    return await csrf_token_of(client)
