"""Real time: the location screen's presence socket and heartbeat fallback, live figure pushes.

The wire protocol is described in services/live.py.
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

from summitcast.domain.accounts import Permission
from summitcast.errors import SummitcastError
from summitcast.presence.base import Message
from summitcast.services import accounts, programme
from summitcast.services.live import LiveService, Reason
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from summitcast.web.deps import DbDep, get_actor, summit_for
from summitcast.web.edge import Slug
from summitcast.web.presence_socket import PUSH_ON_AIR, AsgiScreen, PresenceSockets, answer
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(prefix="/backstage", include_in_schema=False)

LocationsSummit = Annotated[Summit, summit_for(Permission.MANAGE_LOCATIONS)]

# HTTP status of a refused heartbeat on the fallback path.
_STATUS = {Reason.REPLAY: 409, Reason.MALFORMED: 400, Reason.STALE: 400, Reason.FUTURE: 400}
_OK = b'{"ok":true,"interval_s":%s}'
# Seconds a fallback client waits before its next try while a back-end is away.
_RETRY_AFTER_S = "2"
_UNAVAILABLE_JSON = json.dumps(
    {
        "ok": False,
        "reason": Reason.UNAVAILABLE.value,
        "detail": "Live presence is briefly unavailable; try again in a few seconds.",
    }
).encode()


def _live(connection: Request | WebSocket) -> LiveService:
    live: LiveService = connection.app.state.live
    return live


@router.websocket("/live/ws")
async def presence_socket(websocket: WebSocket) -> None:
    """A location screen's presence: hello, then signed heartbeats (see services/live.py)."""
    # `summitcast serve` answers this path before ASGI (web/presence_socket.py); this
    # route serves it under any other ASGI server and in the in-process test client.
    live = _live(websocket)
    try:
        await websocket.accept()
        await websocket.send_text(json.dumps(live.hello()))
    except (WebSocketDisconnect, RuntimeError):
        # The screen gave up while its handshake waited (a herd of reconnects on a busy
        # worker): uvicorn drops the accept of a closing connection and then refuses
        # any send with a RuntimeError. Nothing to answer; the screen retries later.
        return
    bound: str | None = None
    # Silence for two whole timeouts closes the socket, as PresenceSockets' sweep does.
    idle_s = 2 * live.settings.heartbeat_timeout_s
    sockets: PresenceSockets = websocket.app.state.presence_sockets
    screen = AsgiScreen(websocket)  # gets what is on air once its first heartbeat counts
    on_air = PUSH_ON_AIR in websocket.query_params.getlist("push")
    summit_key: str | None = None
    try:
        while True:
            try:
                async with asyncio.timeout(idle_s):
                    message = await websocket.receive()
            except TimeoutError:
                await websocket.close(code=1000, reason="no heartbeat")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            reply = await answer(live, text if isinstance(text, str) else "", bound)
            bound = reply.bound
            if on_air and summit_key is None and bound is not None:
                summit_key = sockets.joined(bound, screen)
            if reply.text is not None:
                await websocket.send_text(reply.text)
            if reply.close:
                await websocket.close(code=reply.close_code, reason=reply.close_reason)
                return
    except WebSocketDisconnect:
        return
    finally:
        if summit_key is not None:
            sockets.on_air.leave(summit_key, screen)


@router.post("/live/heartbeat")
async def heartbeat(request: Request) -> Response:
    """The HTTP fallback of the presence socket: one heartbeat per request."""
    # Read raw and answered with pre-encoded bytes: this is the hot path of a
    # location screen without WebSocket, so no pydantic model and no session.
    status, body, headers = await answer_heartbeat(_live(request), await request.body())
    return Response(body, status, headers=dict(headers), media_type="application/json")


async def answer_heartbeat(
    live: LiveService, body: bytes
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """The fallback's answer to one heartbeat body: status, JSON bytes, extra headers."""
    try:
        outcome = await live.heartbeat_message(body.decode("utf-8", "replace"))
    except live.outage_errors as error:
        live.outages.failed("heartbeat", error)
        return 503, _UNAVAILABLE_JSON, [("retry-after", _RETRY_AFTER_S)]
    if outcome.ok:
        return 200, _OK % str(live.hello()["interval_s"]).encode(), []
    reason = outcome.reason or Reason.MALFORMED
    refusal = json.dumps({"ok": False, "reason": reason.value}).encode()
    return _STATUS.get(reason, 403), refusal, []


@router.get("/s/{slug}/live", response_class=HTMLResponse)
def live_map_page(request: Request, slug: Slug, db: DbDep) -> Response:
    """The public live world map with counters."""
    summit = programme.get_summit(db, slug)
    return render(
        request, "live/map.html", {"summit": summit, "k": request.app.state.settings.k_anonymity}
    )


@router.get("/live/s/{slug}/figures.json")
async def public_figures(request: Request, slug: Slug) -> Response:
    """The public figures of a summit right now (k-anonymous)."""
    live = _live(request)
    try:
        summit_id = await _summit_id(request.app.state.database, slug)
        return JSONResponse(await live.public_figures(summit_id))
    except live.outage_errors as error:
        live.outages.failed("figures", error)
        return _unavailable()


@router.get("/live/s/{slug}/public")
async def public_events(request: Request, slug: Slug) -> Response:
    """Public figures pushed as Server-Sent Events (the fallback of the WebSocket below)."""
    live = _live(request)
    try:
        summit_id = await _summit_id(request.app.state.database, slug)
    except live.outage_errors as error:
        live.outages.failed("figures", error)
        return _unavailable()
    return _sse(live, summit_id, organiser=False)


@router.websocket("/live/s/{slug}/public")
async def public_socket(websocket: WebSocket, slug: Slug) -> None:
    """Public figures pushed over a WebSocket, at most once per push interval."""
    live = _live(websocket)
    try:
        summit_id = await _summit_id(websocket.app.state.database, slug)
    except SummitcastError:
        await websocket.close(code=1008)
        return
    except live.outage_errors as error:
        live.outages.failed("figures", error)
        # 1013 "try again later": the client reconnects with backoff.
        await websocket.close(code=1013)
        return
    await _push(websocket, live, summit_id, organiser=False)


@backstage_router.get("/s/{slug}/live")
async def organiser_events(
    request: Request, summit: LocationsSummit, country: str = ""
) -> Response:
    """Organiser figures (exact, per country and city; arrivals, drops) as Server-Sent Events."""
    return _sse(_live(request), summit.id, organiser=True, country=_country(country))


@backstage_router.websocket("/s/{slug}/live")
async def organiser_socket(websocket: WebSocket, slug: Slug) -> None:
    """Organiser figures over a WebSocket; the session cookie must grant MANAGE_LOCATIONS."""
    summit_id = await asyncio.to_thread(_organiser_summit, websocket, slug)
    if summit_id is None:
        await websocket.close(code=1008)
        return
    country = _country(websocket.query_params.get("country", ""))
    await _push(websocket, _live(websocket), summit_id, organiser=True, country=country)


def _country(code: str) -> str:
    # The dashboard's filter; anything but a two-letter code filters nothing (as the page).
    value = code.strip().upper()
    return value if len(value) == 2 and value.isascii() and value.isalpha() else ""


def _unavailable() -> Response:
    """503 with Retry-After while a back-end is away (the fallback clients retry on it)."""
    return Response(
        _UNAVAILABLE_JSON,
        503,
        headers={"Retry-After": _RETRY_AFTER_S},
        media_type="application/json",
    )


def _organiser_summit(websocket: WebSocket, slug: str) -> int | None:
    # A cross-site page may open a WebSocket with our cookie: only our own origin may.
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin is None or urlsplit(origin).netloc != host:
        return None
    database: Database = websocket.app.state.database
    with database.session() as db:
        # get_actor reads only .session, which a WebSocket has like a Request.
        actor = get_actor(cast(Request, websocket), db)
        try:
            summit = programme.get_summit(db, slug)
            accounts.require(db, actor, summit, Permission.MANAGE_LOCATIONS)
        except SummitcastError:
            return None
        return summit.id


async def _summit_id(database: Database, slug: str) -> int:
    def load() -> int:
        with database.session() as db:
            return programme.get_summit(db, slug).id

    return await asyncio.to_thread(load)


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
