"""Dependencies that keep handlers short: the database session, the caller, the summit.

Everything a route needs from the app (settings, the unit of work, the broadcast manager,
the rate limiters, the report cache) comes from here: routes never read request.app.state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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


def _part(name: str, what: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """A dependency handing routes the object app.py published as app.state.<name>."""

    # Async, so FastAPI calls it on the event loop: a sync dependency costs a thread hop.
    async def part(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state, name)

    part.__name__ = f"get_{name}"
    part.__doc__ = what
    return part


def get_attendance_flush(request: Request) -> Flush:
    """Writes this worker's closed attendance buckets to the database when awaited."""
    recorder: AttendanceRecorder = request.app.state.attendance
    database: Database = request.app.state.database
    return lambda: recorder.flush(database)


# What each name holds is typed here once; app.py (_publish) puts it there.
BroadcastsDep = Annotated[
    BroadcastControl, Depends(_part("broadcasts", "The broadcast manager, as pages use it."))
]
HlsOriginDep = Annotated[
    HlsOrigin, Depends(_part("hls_origin", "Every session's HLS files, from its store."))
]
LoginLimiterDep = Annotated[Limiter, Depends(_part("login_limiter", "Logins per client address."))]
LoginDelayDep = Annotated[
    Delay, Depends(_part("login_delay", "The per-account wait after wrong passwords."))
]
SecondFactorLimiterDep = Annotated[
    Limiter, Depends(_part("second_factor_limiter", "Second-factor answers per account."))
]
ReportCacheDep = Annotated[
    ReportCache, Depends(_part("reports", "Built attendance reports per summit."))
]
AttendanceFlushDep = Annotated[Flush, Depends(get_attendance_flush)]
LiveDep = Annotated[
    LiveService, Depends(_part("live", "The live service: presence, heartbeats, changes."))
]
RegistrationLimiterDep = Annotated[
    accounts.Limiter,
    Depends(_part("registration_limiter", "Location registrations per client.")),
]
UploadProtocolDep = Annotated[
    UploadProtocol, Depends(_part("upload_protocol", "The speakers' upload protocol."))
]
GreenRoomDep = Annotated[
    GreenRoom, Depends(_part("greenroom", "The green room's listeners, as pages use them."))
]
BrowserBridgeDep = Annotated[
    BrowserBridge,
    Depends(_part("browser_live", "The WebRTC bridge of speakers live from their browser.")),
]
# A WebSocket opens its own short unit of work on the app's database.
DatabaseDep = Annotated[Database, Depends(_part("database", "The app's database."))]
