"""Dependencies that keep handlers short: the database session, the caller, the summit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.accounts import Permission
from summitcast.errors import AuthenticationError
from summitcast.services import accounts, second_factor
from summitcast.services.programme import get_summit
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit, User
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


def get_settings(request: Request) -> Settings:
    """The app's Settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_actor(request: Request, db: DbDep) -> accounts.Actor | None:
    """The logged-in caller, or None; a deleted user's stale cookie counts as logged out."""
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        return None
    user = db.get(User, user_id)
    if user is None or request.session.get("pw") != user.password_hash[-16:]:
        # The cookie carries a fragment of the hash so a password change logs out other sessions.
        request.session.clear()
        return None
    settings: Settings = request.app.state.settings
    if settings.environment == "production" and not second_factor.session_allowed(
        db, user, request.session.get("factor")
    ):
        # Staff signed in without a second factor (a cookie from before it was required).
        request.session.clear()
        return None
    return accounts.Actor(user_id=user.id, is_admin=user.is_admin)


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
