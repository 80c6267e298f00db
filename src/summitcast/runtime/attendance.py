"""A worker's attendance tasks: closed buckets flushed to the database, live logs advanced."""

from __future__ import annotations

import asyncio
import logging

from summitcast.config import Settings
from summitcast.runtime.periodic import Periodic, stop_all
from summitcast.services.attendance import AttendanceRecorder, LivePublisher
from summitcast.storage.database import Database

__all__ = ["AttendanceTasks"]

log = logging.getLogger(__name__)


class AttendanceTasks:
    """Flushes the recorder's closed buckets and advances the live logs, each on its interval.

    A failed round is logged and retried at the next one (the recorder keeps counts it
    could not write). Stopping also writes the open bucket, so no count is lost.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        recorder: AttendanceRecorder,
        publisher: LivePublisher,
    ) -> None:
        """Prepare both tasks; nothing runs until `start`."""
        self._database = database
        self._recorder = recorder
        self._publisher = publisher
        # Moves closed buckets into the database (adding to other workers' rows).
        self._flush = Periodic(
            "attendance-flush", self._flush_closed, settings.attendance_flush_interval_s, logger=log
        )
        # Appends closed buckets to live logs and signs a new head each interval.
        self._heads = Periodic(
            "attendance-heads",
            self._advance_live_logs,
            settings.attendance_head_interval_s,
            logger=log,
        )

    async def _flush_closed(self) -> None:
        await self._recorder.flush(self._database)

    async def _advance_live_logs(self) -> None:
        await asyncio.to_thread(self._publisher.tick)

    def start(self) -> None:
        """Start both tasks in the running event loop."""
        self._flush.start()
        self._heads.start()

    async def stop(self) -> None:
        """Stop both tasks, then write every count left, the open bucket's too."""
        await stop_all([self._heads, self._flush])
        # The open bucket too: the next worker's counts add to it, none are lost.
        try:
            await self._recorder.flush(self._database, everything=True)
        except Exception:
            log.exception("attendance counts lost at shutdown")
