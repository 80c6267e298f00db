"""Supervised periodic tasks: a step runs every interval, survives failures, stops on cancel."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from summitcast.runtime.periodic import RUN_AGAIN, Backoff, Periodic, Reconciler, stop_all

pytestmark = pytest.mark.unit


class OutageError(Exception):
    """An expected outage (Redis or the database restarting)."""


def test_backoff_doubles_from_first_and_stops_at_the_cap() -> None:
    backoff = Backoff(first_s=0.5, cap_s=3.0)

    delays = [backoff.delay(failures) for failures in range(6)]

    assert delays == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_jitter_takes_at_most_its_share_of_the_delay() -> None:
    backoff = Backoff(first_s=1.0, cap_s=8.0, jitter=0.5)

    assert backoff.delay(4, rng=lambda: 1.0) == 4.0
    assert backoff.delay(4, rng=lambda: 0.0) == 8.0


def test_step_runs_every_interval_after_waiting_one_first() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def step() -> None:
            calls.append(loop.time() - started)

        task = Periodic("ticker", step, interval_s=0.02)
        task.start()
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        await task.stop()

    asyncio.run(scenario())

    assert len(calls) >= 3
    assert calls[0] >= 0.02


def test_immediately_runs_the_first_step_without_waiting() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        async def step() -> None:
            calls.append("step")

        task = Periodic("eager", step, interval_s=60.0, immediately=True)
        task.start()
        await asyncio.sleep(0.02)
        await task.stop()

    asyncio.run(scenario())

    assert calls == ["step"]


def test_a_failing_step_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = iter([RuntimeError("database went away"), None, None])
    calls: list[str] = []

    async def scenario() -> Periodic:
        async def step() -> None:
            calls.append("step")
            error = next(outcomes, None)
            if error is not None:
                raise error

        task = Periodic(
            "flush", step, interval_s=0.01, immediately=True, backoff=Backoff(0.01, 0.01)
        )
        task.start()
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        await task.stop()
        return task

    with caplog.at_level(logging.ERROR, logger="summitcast.runtime.periodic"):
        task = asyncio.run(scenario())

    assert len(calls) >= 3
    assert task.failures == 0
    assert [r.getMessage() for r in caplog.records] == ["flush failed; retrying"]
    assert caplog.records[0].exc_info is not None


def test_expected_errors_go_to_their_hook_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    settled: list[str] = []

    async def scenario() -> list[bool]:
        failures = iter([OutageError("redis restarting")])

        async def step() -> None:
            if (error := next(failures, None)) is not None:
                raise error

        task = Periodic(
            "sweep",
            step,
            interval_s=1.0,
            expected=(OutageError,),
            on_expected=lambda name, error: seen.append((name, str(error))),
            on_success=lambda: settled.append("ok"),
        )
        return [await task.run_once(), await task.run_once()]

    with caplog.at_level(logging.WARNING):
        results = asyncio.run(scenario())

    assert results == [False, True]
    assert seen == [("sweep", "redis restarting")]
    assert settled == ["ok"]
    assert caplog.records == []


def test_consecutive_failures_wait_for_the_backoff_not_the_interval() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def step() -> None:
            calls.append(loop.time())
            raise OutageError("down")

        task = Periodic(
            "reconnect",
            step,
            interval_s=0.001,
            immediately=True,
            backoff=Backoff(first_s=0.05, cap_s=0.05),
            expected=(OutageError,),
            on_expected=lambda name, error: None,
        )
        task.start()
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        await task.stop()

    asyncio.run(scenario())

    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert min(gaps) >= 0.045


def test_stop_cancels_a_step_in_progress_and_is_idempotent() -> None:
    events: list[str] = []

    async def scenario() -> bool:
        async def step() -> None:
            events.append("began")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise

        task = Periodic("long", step, interval_s=1.0, immediately=True)
        task.start()
        await asyncio.sleep(0.02)
        running = task.running
        await task.stop()
        await task.stop()
        return running and not task.running

    stopped = asyncio.run(scenario())

    assert stopped
    assert events == ["began", "cancelled"]


def test_stop_all_ends_every_task() -> None:
    async def scenario() -> list[bool]:
        async def step() -> None:
            await asyncio.sleep(0)

        tasks = [Periodic(f"t{i}", step, interval_s=0.01) for i in range(3)]
        for task in tasks:
            task.start()
        await asyncio.sleep(0.03)
        await stop_all(tasks)
        return [task.running for task in tasks]

    assert asyncio.run(scenario()) == [False, False, False]


def test_wake_cuts_the_pause_short() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        ran = asyncio.Event()

        async def step() -> None:
            ran.set()

        task = Periodic("reconciler", step, interval_s=60.0)
        task.start()
        started = loop.time()
        task.wake()  # a producer pressed a button: look now, not in a minute
        await asyncio.wait_for(ran.wait(), 5)
        await task.stop()
        return loop.time() - started

    assert asyncio.run(scenario()) < 5


def test_a_step_that_found_work_runs_again_without_a_pause() -> None:
    async def scenario() -> int:
        queue = [1, 2, 3]
        done = asyncio.Event()

        async def step() -> object:
            if queue:
                queue.pop()
                return RUN_AGAIN
            done.set()
            return None

        task = Periodic("jobs", step, interval_s=60.0, immediately=True)
        task.start()
        await asyncio.wait_for(done.wait(), 5)
        await task.stop()
        return len(queue)

    assert asyncio.run(scenario()) == 0


def test_graceful_stop_lets_the_running_step_finish() -> None:
    events: list[str] = []

    async def scenario() -> None:
        async def step() -> None:
            events.append("began")
            await asyncio.sleep(0.05)  # say, an encoder half started
            events.append("finished")

        task = Periodic("manager", step, interval_s=60.0, immediately=True)
        task.start()
        await asyncio.sleep(0.01)
        await task.stop(graceful=True)

    asyncio.run(scenario())

    assert events == ["began", "finished"]


def test_the_failure_hook_may_take_over_the_logging(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def noted(error: BaseException) -> bool:
        seen.append(str(error))
        return True

    async def scenario() -> object:
        async def step() -> None:
            raise RuntimeError("database hiccup")

        return await Periodic("sync", step, interval_s=1.0, on_failure=noted).run_once()

    with caplog.at_level(logging.WARNING):
        result = asyncio.run(scenario())

    assert result is False
    assert seen == ["database hiccup"]
    assert caplog.records == []


def test_a_reconciler_shows_its_last_error_until_a_sync_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = iter([RuntimeError("database hiccup"), None])

    async def sync() -> None:
        if (error := next(outcomes)) is not None:
            raise error

    async def scenario() -> list[str | None]:
        reconciler = Reconciler("green room", sync, 1.0, logging.getLogger("test"))
        seen = [reconciler.last_error]
        await reconciler.task.run_once()
        seen.append(reconciler.last_error)
        await reconciler.task.run_once()
        return [*seen, reconciler.last_error]

    with caplog.at_level(logging.ERROR):
        seen = asyncio.run(scenario())

    assert seen == [None, "RuntimeError: database hiccup", None]
    assert [r.getMessage() for r in caplog.records] == ["green room could not sync"]


def test_a_task_runs_again_in_a_new_event_loop() -> None:
    # An app's lifespan may start in one loop, stop, and start again in another (each
    # TestClient makes its own): the wake-up must not stay bound to the first loop.
    runs: list[int] = []

    async def step() -> None:
        runs.append(1)

    task = Periodic("again", step, interval_s=60.0)

    async def scenario() -> None:
        task.start()
        task.wake()
        while not runs:
            await asyncio.sleep(0.01)
        runs.clear()
        await task.stop(graceful=True)

    asyncio.run(scenario())
    asyncio.run(scenario())
