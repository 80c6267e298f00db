"""Dependencies that keep handlers short: the database session, the caller, the summit.

Everything a route needs from the app (settings, the unit of work, the broadcast manager,
the rate limiters, the report cache) comes from here: routes never read request.app.state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection

from summitcast.config import Settings
from summitcast.domain.accounts import Permission
from summitcast.errors import AuthenticationError
from summitcast.services import Database, DbSession, Summit, accounts, second_factor
from summitcast.services.accounts import Delay, Limiter
from summitcast.services.attendance import AttendanceRecorder
from summitcast.services.attendance_pages import Flush
from summitcast.services.broadcast_control import BroadcastControl
from summitcast.services.browser_live import BrowserBridge
from summitcast.services.greenroom import GreenRoom
from summitcast.services.hls_origin import HlsOrigin
from summitcast.services.live.service import LiveService
from summitcast.services.programme import get_summit
from summitcast.services.reports import ReportCache
from summitcast.services.upload_protocol import UploadProtocol
from summitcast.web.edge import Slug

# Connections left to background work (jobs, attendance flushes, sweeps) while requests
# hold every request slot.
BACKGROUND_CONNECTIONS = 5


async def _db_slot(request: Request) -> AsyncIterator[None]:
    """Wait, on the event loop, for one of the pool's request slots; held to the commit."""
    # A request holds its connection across several thread hops (dependencies, handler).
    # Without this bound, more requests than the pool has connections could each hold one
    # while waiting for a worker thread, with every worker thread blocked waiting for a
    # connection: nothing moves until the pool's timeout (100 uploads at once got 72 x 503).
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = getattr(
        request.app.state, "db_slots", None
    )
    if held is None or held[0] is not loop:  # a test client may run the app in a new loop
        database: Database = request.app.state.database
        held = (loop, asyncio.Semaphore(max(1, database.capacity - BACKGROUND_CONNECTIONS)))
        request.app.state.db_slots = held
    async with held[1]:
        yield


def get_db(
    request: Request, _slot: Annotated[None, Depends(_db_slot, scope="function")]
) -> Iterator[DbSession]:
    """One unit of work per request, committed when the handler returns (before the answer)."""
    database: Database = request.app.state.database
    with database.session() as db:
        yield db


def get_settings(request: HTTPConnection) -> Settings:
    """The app's Settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_actor(request: Request, db: DbDep, settings: SettingsDep) -> accounts.Actor | None:
    """The logged-in caller, or None; a deleted user's stale cookie counts as logged out."""
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        return None
    # The cookie carries a fragment of the hash so a password change logs out other
    # sessions; in production staff need a session signed in with a second factor.
    actor = second_factor.signed_in_actor(
        db,
        user_id,
        request.session.get("pw"),
        request.session.get("factor"),
        factor_required=settings.environment == "production",
    )
    if actor is None:
        request.session.clear()
    return actor


def require_actor(actor: ActorDep) -> accounts.Actor:
    """The logged-in caller, or 401."""
    if actor is None:
        raise AuthenticationError("Log in to do this.")
    return actor


# scope="function": the unit of work is committed when the handler returns, before the
# response is sent. With the default (request) scope FastAPI commits after sending, so a
# client could act on a 2xx before its write was visible (a speaker's first chunk got
# 404 "No such upload." right after the upload was created), and a failed commit after
# a 2xx lost the write silently.
DbDep = Annotated[DbSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ActorDep = Annotated[accounts.Actor | None, Depends(get_actor)]
CurrentActor = Annotated[accounts.Actor, Depends(require_actor)]


def summit_for(permission: Permission) -> Any:
    """A dependency loading the summit named in the path and checking the caller's role on it."""

    def load(slug: Slug, db: DbDep, actor: ActorDep) -> Summit:
        if actor is None:
            raise AuthenticationError("Log in to do this.")
        summit = get_summit(db, slug)
        accounts.require(db, actor, summit, permission)
        return summit

    return Depends(load)


BackstageSummit = Annotated[Summit, summit_for(Permission.VIEW_BACKSTAGE)]
EditableSummit = Annotated[Summit, summit_for(Permission.EDIT_PROGRAMME)]
RunnerSummit = Annotated[Summit, summit_for(Permission.RUN_BROADCAST)]


def get_broadcasts(request: Request) -> BroadcastControl:
    """The broadcast manager, as pages may use it."""
    broadcasts: BroadcastControl = request.app.state.broadcasts
    return broadcasts


def get_hls_origin(request: Request) -> HlsOrigin:
    """Every session's HLS files, from the configured segment store."""
    origin: HlsOrigin = request.app.state.hls_origin
    return origin


def get_login_limiter(request: Request) -> Limiter:
    """Logins per client address."""
    limiter: Limiter = request.app.state.login_limiter
    return limiter


def get_login_delay(request: Request) -> Delay:
    """The per-account wait after wrong passwords."""
    delay: Delay = request.app.state.login_delay
    return delay


def get_second_factor_limiter(request: Request) -> Limiter:
    """Second-factor codes and passkey answers per account."""
    limiter: Limiter = request.app.state.second_factor_limiter
    return limiter


def get_report_cache(request: Request) -> ReportCache:
    """Built attendance reports per summit."""
    cache: ReportCache = request.app.state.reports
    return cache


def get_attendance_flush(request: Request) -> Flush:
    """Writes this worker's closed attendance buckets to the database when awaited."""
    recorder: AttendanceRecorder = request.app.state.attendance
    database: Database = request.app.state.database
    return lambda: recorder.flush(database)


BroadcastsDep = Annotated[BroadcastControl, Depends(get_broadcasts)]
HlsOriginDep = Annotated[HlsOrigin, Depends(get_hls_origin)]
LoginLimiterDep = Annotated[Limiter, Depends(get_login_limiter)]
LoginDelayDep = Annotated[Delay, Depends(get_login_delay)]
SecondFactorLimiterDep = Annotated[Limiter, Depends(get_second_factor_limiter)]
ReportCacheDep = Annotated[ReportCache, Depends(get_report_cache)]
AttendanceFlushDep = Annotated[Flush, Depends(get_attendance_flush)]


def get_live(request: HTTPConnection) -> LiveService:
    """The app's live service: presence, heartbeats, location changes told to every worker."""
    live: LiveService = request.app.state.live
    return live


def get_registration_limiter(request: Request) -> accounts.Limiter:
    """The limiter of location registrations per client."""
    limiter: accounts.Limiter = request.app.state.registration_limiter
    return limiter


LiveDep = Annotated[LiveService, Depends(get_live)]
RegistrationLimiterDep = Annotated[accounts.Limiter, Depends(get_registration_limiter)]


async def get_upload_protocol(request: Request) -> UploadProtocol:
    """The speakers' upload protocol (app.py builds it); on the event loop, no thread hop."""
    protocol: UploadProtocol = request.app.state.upload_protocol
    return protocol


UploadProtocolDep = Annotated[UploadProtocol, Depends(get_upload_protocol)]


def get_green_room(request: Request) -> GreenRoom:
    """The green room's listeners (runtime.greenroom.GreenRoomManager), as pages may use them."""
    room: GreenRoom = request.app.state.greenroom
    return room


def get_browser_bridge(request: Request) -> BrowserBridge:
    """The WebRTC bridge of speakers going live from their browser (runtime.webrtc)."""
    bridge: BrowserBridge = request.app.state.browser_live
    return bridge


GreenRoomDep = Annotated[GreenRoom, Depends(get_green_room)]
BrowserBridgeDep = Annotated[BrowserBridge, Depends(get_browser_bridge)]


def get_database(connection: HTTPConnection) -> Database:
    """The app's database, for a WebSocket that opens its own short unit of work."""
    database: Database = connection.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
