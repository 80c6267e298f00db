"""Stream health shared between app nodes: the node with the encoders publishes, every node shows.

Only the node that runs a session's encoders knows its speed, drops and segment
age, but a producer's control room may be served by any worker. That node
publishes one message a second on the presence ``PubSub`` (Redis when
configured, in-process otherwise), holding the health view of every session it
runs; every node keeps the latest view per session and shows it while it is
fresh. A view older than ``STALE_AFTER_S`` (its node stopped or lost Redis)
is shown as nothing, like a session no node runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from summitcast.presence import PubSub
from summitcast.runtime.periodic import Backoff, Periodic

logger = logging.getLogger(__name__)

HEALTH_CHANNEL = "broadcast-health"
PUBLISH_INTERVAL_S = 1.0
STALE_AFTER_S = 5.0  # five missed publications: that node no longer runs the session
RESUBSCRIBE_S = 2.0  # after the back-end failed, try again this often


def node_name() -> str:
    """This process, as other nodes see it in health views (host and PID)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class HealthBoard:
    """The latest health view of each session on air, from whichever node runs it."""

    def __init__(
        self,
        pubsub: PubSub,
        *,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.pubsub = pubsub
        self.node = node or node_name()
        self.clock = clock
        self.stale_after_s = stale_after_s
        # session id → (time received, node, view)
        self._views: dict[int, tuple[float, str, dict[str, Any]]] = {}
        self._subscribed = asyncio.Event()
        # After the back-end failed (or the subscription ended) subscribe again, every
        # RESUBSCRIBE_S; one warning line a failure, no traceback: an outage, not a bug.
        self._listener = Periodic(
            "health-board",
            self._listen,
            RESUBSCRIBE_S,
            immediately=True,
            backoff=Backoff(first_s=RESUBSCRIBE_S, cap_s=RESUBSCRIBE_S),
            expected=(Exception,),
            on_expected=lambda _, exc: logger.warning(
                "stream health board lost its subscription: %s", exc
            ),
            logger=logger,
        )

    async def start(self) -> None:
        """Listen for other nodes' health; returns once subscribed (or after a short wait)."""
        self._listener.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def stop(self) -> None:
        """Stop listening."""
        await self._listener.stop()

    async def publish(self, views: Mapping[int, dict[str, Any]]) -> None:
        """Send the health views of the sessions this node runs (the next one repairs a loss)."""
        message = {
            "node": self.node,
            "sessions": {str(session_id): view for session_id, view in views.items()},
        }
        try:
            await self.pubsub.publish(HEALTH_CHANNEL, message)
        except Exception as exc:  # a Redis outage must not touch the broadcast itself
            logger.warning("stream health not published: %s", exc)

    def get(self, session_id: int) -> dict[str, Any] | None:
        """The freshest view of a session published by any node, or None if none is fresh."""
        entry = self._views.get(session_id)
        if entry is None:
            return None
        received, node, view = entry
        age = self.clock() - received
        if age > self.stale_after_s:
            return None
        return {**view, "node": node, "published_s_ago": round(age, 1)}

    def receive(self, message: Mapping[str, Any]) -> None:
        """Keep the views of one published message."""
        node = str(message.get("node", "?"))
        sessions = message.get("sessions")
        if not isinstance(sessions, dict):
            return
        now = self.clock()
        for key, view in sessions.items():
            with contextlib.suppress(ValueError):
                if isinstance(view, dict):
                    self._views[int(key)] = (now, node, view)

    async def _listen(self) -> None:
        """Subscribe and keep the latest views until the subscription ends or fails."""
        async with self.pubsub.subscribe(HEALTH_CHANNEL) as subscription:
            self._subscribed.set()
            async for message in subscription:
                self.receive(message)
