"""The attendance background tasks: closed buckets flushed each interval, all of them at stop."""

from __future__ import annotations

import asyncio

import pytest

from summitcast.config import Settings
from summitcast.runtime.attendance import AttendanceTasks
from summitcast.services.attendance import AttendanceRecorder, LivePublisher
from summitcast.storage.database import Database
from tests.services.test_attendance import T0, Clock, count_beats, make_world, rows

pytestmark = pytest.mark.integration


def test_attendance_tasks_flush_closed_buckets_then_everything_at_stop(
    database: Database, settings: Settings
) -> None:
    fast = settings.model_copy(update={"attendance_flush_interval_s": 0.05})
    world = make_world(database, fast, [("FR", "public")])
    location = world.locations[0]
    clock = Clock(T0)
    recorder = AttendanceRecorder(fast.attendance_bucket_s, clock)
    tasks = AttendanceTasks(fast, database, recorder, LivePublisher(fast, database))
    # Two heartbeats in the first bucket, one in the next (still open at the clock's time).
    count_beats(recorder, clock, location, [T0 + 10, T0 + 20, T0 + 310])

    async def scenario() -> tuple[list[tuple[int, int, int]], int]:
        tasks.start()
        for _ in range(200):  # a loaded machine may take a while to run the first round
            await asyncio.sleep(0.05)
            if recorder.pending == 1:
                break
        while_running = rows(database), recorder.pending
        await tasks.stop()
        return while_running

    while_running = asyncio.run(scenario())

    assert while_running == ([(location.id, T0, 2)], 1)
    assert rows(database) == [(location.id, T0, 2), (location.id, T0 + 300, 1)]
    assert recorder.pending == 0
