"""Real time: the location screen's presence socket and heartbeat fallback, live figure pushes.

The wire protocol is written down in web/transport/presence_protocol.py; under create_app
the heartbeat and the presence socket are served by web/transport/heartbeat.py before
routing, and the two routes below hold the same conversation for any other mounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from summitcast.config import Settings
from summitcast.domain.accounts import Permission
from summitcast.errors import SummitcastError
from summitcast.presence.base import Message
from summitcast.services import Database, Summit, accounts, programme
from summitcast.services.live import OUTAGE_ERRORS, LiveService
from summitcast.web.deps import DatabaseDep, DbDep, LiveDep, SettingsDep, get_actor, summit_for
from summitcast.web.edge import Slug
from summitcast.web.templating import render
from summitcast.web.transport.presence_protocol import answer_heartbeat, unavailable
from summitcast.web.transport.presence_socket import PresenceSocketsDep, serve_screen

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(prefix="/backstage", include_in_schema=False)

LocationsSummit = Annotated[Summit, summit_for(Permission.MANAGE_LOCATIONS)]


@router.websocket("/live/ws")
async def presence_socket(websocket: WebSocket, live: LiveDep, sockets: PresenceSocketsDep) -> None:
    """A location screen's presence: hello, then signed heartbeats."""
    await serve_screen(websocket, live, sockets)


@router.post("/live/heartbeat")
async def heartbeat(request: Request, live: LiveDep) -> Response:
    """The HTTP fallback of the presence socket: one heartbeat per request."""
    status, body, headers = await answer_heartbeat(live, await request.body())
    return Response(body, status, headers=dict(headers), media_type="application/json")


@router.get("/s/{slug}/live", response_class=HTMLResponse)
def live_map_page(request: Request, slug: Slug, db: DbDep, settings: SettingsDep) -> Response:
    """The public live world map with counters."""
    summit = programme.get_summit(db, slug)
    return render(request, "live/map.html", {"summit": summit, "k": settings.k_anonymity})


@router.get("/live/s/{slug}/figures.json")
async def public_figures(slug: Slug, live: LiveDep) -> Response:
    """The public figures of a summit right now (k-anonymous)."""
    try:
        summit_id = await live.summit_id(slug)
        return JSONResponse(await live.public_figures(summit_id))
    except OUTAGE_ERRORS as error:
        live.outages.failed("figures", error)
        return unavailable()


@router.get("/live/s/{slug}/public")
async def public_events(slug: Slug, live: LiveDep) -> Response:
    """Public figures pushed as Server-Sent Events (the fallback of the WebSocket below)."""
    try:
        summit_id = await live.summit_id(slug)
    except OUTAGE_ERRORS as error:
        live.outages.failed("figures", error)
        return unavailable()
    return _sse(live, summit_id, organiser=False)


@router.websocket("/live/s/{slug}/public")
async def public_socket(websocket: WebSocket, slug: Slug, live: LiveDep) -> None:
    """Public figures pushed over a WebSocket, at most once per push interval."""
    try:
        summit_id = await live.summit_id(slug)
    except SummitcastError:
        await websocket.close(code=1008)
        return
    except OUTAGE_ERRORS as error:
        live.outages.failed("figures", error)
        # 1013 "try again later": the client reconnects with backoff.
        await websocket.close(code=1013)
        return
    await _push(websocket, live, summit_id, organiser=False)


@backstage_router.get("/s/{slug}/live")
async def organiser_events(summit: LocationsSummit, live: LiveDep, country: str = "") -> Response:
    """Organiser figures (exact, per country and city; arrivals, drops) as Server-Sent Events."""
    return _sse(live, summit.id, organiser=True, country=_country(country))


@backstage_router.websocket("/s/{slug}/live")
async def organiser_socket(
    websocket: WebSocket,
    slug: Slug,
    live: LiveDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> None:
    """Organiser figures over a WebSocket; the session cookie must grant MANAGE_LOCATIONS."""
    summit_id = await asyncio.to_thread(_organiser_summit, websocket, database, settings, slug)
    if summit_id is None:
        await websocket.close(code=1008)
        return
    country = _country(websocket.query_params.get("country", ""))
    await _push(websocket, live, summit_id, organiser=True, country=country)


def _country(code: str) -> str:
    # The dashboard's filter; anything but a two-letter code filters nothing (as the page).
    value = code.strip().upper()
    return value if len(value) == 2 and value.isascii() and value.isalpha() else ""


def _organiser_summit(
    websocket: WebSocket, database: Database, settings: Settings, slug: str
) -> int | None:
    # A cross-site page may open a WebSocket with our cookie: only our own origin may.
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin is None or urlsplit(origin).netloc != host:
        return None
    with database.session() as db:
        # get_actor reads only .session, which a WebSocket has like a Request.
        actor = get_actor(cast(Request, websocket), db, settings)
        try:
            summit = programme.get_summit(db, slug)
            accounts.require(db, actor, summit, Permission.MANAGE_LOCATIONS)
        except SummitcastError:
            return None
        return summit.id


async def _push(
    websocket: WebSocket, live: LiveService, summit_id: int, *, organiser: bool, country: str = ""
) -> None:
    await websocket.accept()

    async def send_all() -> None:
        async with contextlib.aclosing(
            live.figure_stream(summit_id, organiser=organiser, country=country)
        ) as stream:
            async for message in stream:
                if message is not None:
                    await websocket.send_text(json.dumps(message))

    async def until_closed() -> None:
        # Clients send nothing; reading is how a closed socket is noticed.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sender = asyncio.create_task(send_all())
    reader = asyncio.create_task(until_closed())
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


def _sse(live: LiveService, summit_id: int, *, organiser: bool, country: str = "") -> Response:
    async def events() -> AsyncIterator[str]:
        # Tell EventSource to wait a little before its own retry.
        yield "retry: 3000\n\n"
        async with contextlib.aclosing(
            live.figure_stream(summit_id, organiser=organiser, country=country)
        ) as stream:
            async for message in stream:
                yield _event(message)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering keep proxies (nginx) from holding events back.
        headers={"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"},
    )


def _event(message: Message | None) -> str:
    if message is None:
        return ": keep-alive\n\n"
    return f"data: {json.dumps(message)}\n\n"
