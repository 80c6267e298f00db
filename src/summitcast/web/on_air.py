"""What a location screen shows of the broadcast, and its push over the presence socket.

A screen plays the summit's session on air and shows what is on now and next as the
broadcast itself has it (the view of the watch page and control room, not the
planned times). Why a push over the presence socket and not a poll: 30,000 screens
polling a Python endpoint every few seconds would be thousands of requests a second
for an answer that changes a few times an hour. Every screen already holds its
presence socket, so each worker reads the view of each summit that has screens on
it once a second (a handful of indexed queries, however many screens there are) and
writes one frame to those screens only when the view changed. A screen joins once
its first heartbeat is accepted and gets the last view at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any, Protocol

from summitcast.errors import NotFoundError
from summitcast.services import Database, DbSession, Summit, programme
from summitcast.services import broadcast_control as control
from summitcast.web.routes.broadcast import on_air_view
from summitcast.web.routes.hls import master_url

log = logging.getLogger(__name__)

ON_AIR_PERIOD_S = 1.0  # how often each worker re-reads the view of its screens' summits
MESSAGE_TYPE = "on_air"

Health = Callable[[int], dict[str, Any] | None]  # BroadcastManager.health


def ready(health: dict[str, Any] | None) -> bool:
    """Whether a session's stream has its first segments written, so players can start."""
    # Until then its playlists answer 404, which a browser logs as an error on every
    # screen. The age is that of the top rung's playlist, which the encoder rewrites
    # at each new segment; screens hear of it at the next check, a second later.
    # "playable": every rendition's live playlist is published (absent from an older node).
    return (
        health is not None
        and health.get("segment_age_s") is not None
        and bool(health.get("playable", True))
    )


def screen_view(db: DbSession, summit: Summit, health: Health | None = None) -> dict[str, Any]:
    """The session a screen plays (if on air), what is on now and next, as one message.

    ``ready`` says whether its stream can be played yet (always true without ``health``).
    """
    view: dict[str, Any] = {"type": MESSAGE_TYPE, "active": False, "ready": False}
    view["session_id"] = None
    try:
        shown = control.on_air(db, summit)
    except NotFoundError:  # a summit without sessions: nothing to play or announce
        return view | {"session": None, "master": None, "status": "idle", "live": False,
                       "on_air": None, "next": None, "starts_at": None}  # fmt: skip
    session = shown.session
    view = on_air_view(shown.plan, shown.run)
    active = shown.plan.state.active
    return {
        "type": MESSAGE_TYPE,
        "active": active,
        "ready": active and (health is None or ready(health(session.id))),
        "session_id": session.id,
        "session": session.title,
        "master": master_url(summit.slug, session.id) if active else None,
        "status": view["status"],
        "live": view["live"],
        "on_air": view["on_air"],
        "next": view["next"],
        # When nothing is on air, the screen says when the session is planned.
        "starts_at": None if active else session.planned_start.astimezone(UTC).isoformat(),
    }


def screen_view_of(
    database: Database, summit_key: str, health: Health | None = None
) -> dict[str, Any] | None:
    """screen_view of the summit with this presence key (its id), or None if it is gone."""
    with database.session() as db:
        summit = programme.summit_by_id(db, int(summit_key))
        return None if summit is None else screen_view(db, summit, health)


class Screen(Protocol):
    """A location screen's connection, as the pushes see it."""

    def push(self, text: str) -> None:
        """Send one text message without waiting (dropped if the connection is gone)."""


class OnAirScreens:
    """The screens of one worker by summit, and the task that pushes the view when it changes."""

    def __init__(
        self,
        database: Database,
        *,
        period_s: float = ON_AIR_PERIOD_S,
        read: Callable[[Database, str, Health | None], dict[str, Any] | None] = screen_view_of,
    ) -> None:
        self.database = database
        self.period_s = period_s
        self._read = read
        # The stream health of sessions (BroadcastManager.health), set once the app has
        # a manager; None: streams count as ready.
        self.health: Health | None = None
        # summit key -> its screens on this worker (the sockets themselves: no extra
        # long-lived object per screen for the collector to scan).
        self.screens: dict[str, set[Screen]] = {}
        self.last: dict[str, str] = {}  # summit key -> the last view sent, as JSON
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def join(self, summit_key: str, screen: Screen) -> None:
        """Push this screen the views of its summit from now on, starting with the last one."""
        self.screens.setdefault(summit_key, set()).add(screen)
        last = self.last.get(summit_key)
        if last is not None:
            screen.push(last)

    def leave(self, summit_key: str, screen: Screen) -> None:
        """Stop pushing to this screen."""
        screens = self.screens.get(summit_key)
        if screens is None:
            return
        screens.discard(screen)
        if not screens:
            del self.screens[summit_key]
            self.last.pop(summit_key, None)

    async def check(self) -> int:
        """Read the view of each summit with screens, push the changed ones; how many changed."""
        changed = 0
        for summit_key in list(self.screens):
            view = await asyncio.to_thread(self._read, self.database, summit_key, self.health)
            if view is None:
                continue
            text = json.dumps(view, separators=(",", ":"))
            if self.last.get(summit_key) == text or summit_key not in self.screens:
                continue
            self.last[summit_key] = text
            changed += 1
            for screen in list(self.screens[summit_key]):
                screen.push(text)
        return changed

    def start(self) -> None:
        """Start checking every period_s."""
        self._task = asyncio.create_task(self._check_forever(), name="on-air-screens")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self.check()
            except Exception:  # a database outage must not end the pushes
                # Logged at its start and end, not every second: screens keep the last view.
                if not self._failing:
                    log.warning("location screens: reading the on-air view failed", exc_info=True)
                self._failing = True
            else:
                if self._failing:
                    log.warning("location screens: the on-air view is read again")
                self._failing = False
