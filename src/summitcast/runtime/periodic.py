"""Supervised periodic tasks: run a step every N seconds, survive its failures, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[object]]
ErrorHook = Callable[[str, BaseException], None]
# Sees a failure before it is logged; answers True when it has logged it itself.
FailureHook = Callable[[BaseException], bool]
# Returned by a step that found work: the next step runs without a pause.
RUN_AGAIN = object()


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after consecutive failures: doubling from first_s, capped, jittered."""

    first_s: float = 0.5
    cap_s: float = 30.0
    # Share of the delay drawn at random (0: none, 1: full jitter), so that the workers of
    # a restarted Redis or database do not all come back in the same instant.
    jitter: float = 0.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after `failures` failures in a row (0 when none)."""
        if failures < 1:
            return 0.0
        ceiling = min(self.cap_s, self.first_s * 2.0 ** min(failures - 1, 32))
        return ceiling * (1.0 - self.jitter * rng())


@dataclass(slots=True)
class Periodic:
    """One named step run every interval_s until stopped; a failed step is logged and retried.

    The pause comes before each step (``immediately=False``, as the hand-written loops did)
    or after it. After a failure the next try waits for the larger of the interval and the
    backoff. Errors listed in ``expected`` (an outage of Redis or the database) go to
    ``on_expected`` as one line, without a traceback; any other exception is logged with
    its traceback. Cancellation is never swallowed.

    Reconcilers (the broadcast and green-room managers, the job worker) also need:
    ``wake()`` cuts the current pause short (a producer pressed a button); a step that
    returns ``RUN_AGAIN`` runs again at once (a job was done, look for the next one);
    ``on_failure`` sees every failure first and may take over its logging; and
    ``stop(graceful=True)`` lets the running step finish instead of cancelling it.
    """

    name: str
    step: Step
    interval_s: float
    backoff: Backoff = field(default_factory=Backoff)
    immediately: bool = False
    expected: tuple[type[BaseException], ...] = ()
    on_expected: ErrorHook | None = None
    on_success: Callable[[], None] | None = None
    on_failure: FailureHook | None = None
    logger: logging.Logger = log
    failures: int = 0
    _task: asyncio.Task[None] | None = None
    # Made by start() or run(): an Event belongs to the event loop that first waits on it,
    # and an app's lifespan may run again in a new loop (each TestClient makes its own).
    _wake: asyncio.Event | None = None
    _stopping: bool = False

    async def run(self) -> None:
        """Run the step until cancelled or stopped gracefully."""
        if self._wake is None:
            self._wake = asyncio.Event()
        if not self.immediately:
            await self._pause(self.interval_s)
        while not self._stopping:
            again = await self.run_once()
            if again is RUN_AGAIN or self._stopping:
                continue
            await self._pause(max(self.interval_s, self.backoff.delay(self.failures)))

    async def _pause(self, seconds: float) -> None:
        """Sleep for `seconds`, or less if woken; a wake-up during the step is kept."""
        wake = self._wake
        assert wake is not None  # made by run()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()

    def wake(self) -> None:
        """Run the next step now instead of at the end of the pause (same event loop only)."""
        if self._wake is not None:
            self._wake.set()

    async def run_once(self) -> object:
        """Run the step once: its result, or False when it failed (logged, not raised)."""
        try:
            result = await self.step()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failures += 1
            if self.on_failure is not None and self.on_failure(error):
                return False
            if isinstance(error, self.expected):
                if self.on_expected is not None:
                    self.on_expected(self.name, error)
                else:
                    self.logger.warning("%s failed: %s; retrying", self.name, error)
            else:
                self.logger.exception("%s failed; retrying", self.name)
            return False
        self.failures = 0
        if self.on_success is not None:
            self.on_success()
        return True if result is None else result

    def start(self) -> asyncio.Task[None]:
        """Start running in the background (needs a running event loop); returns the task."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self.run(), name=self.name)
        return self._task

    @property
    def running(self) -> bool:
        """Whether the background task runs."""
        return self._task is not None and not self._task.done()

    async def stop(self, *, graceful: bool = False) -> None:
        """Stop the background task and wait until it has ended; idempotent.

        Graceful: the running step finishes (a reconciler half-way through starting an
        encoder must not leave it orphaned); otherwise the task is cancelled at once.
        """
        task, self._task = self._task, None
        if task is None:
            return
        if graceful:
            self._stopping = True
            self.wake()
            await task
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Reconciler:
    """Brings running work in line with the database every poll_s, or at once when woken."""

    def __init__(self, what: str, sync: Step, poll_s: float, logger: logging.Logger) -> None:
        self.what = what
        self.logger = logger
        # Shown in the control room until the next sync succeeds.
        self.last_error: str | None = None
        # A failed sync is retried at the same pace (no growing backoff): a database
        # hiccup must neither end the broadcast nor slow down a producer's next button.
        self.task = Periodic(
            what,
            sync,
            poll_s,
            backoff=Backoff(first_s=poll_s, cap_s=poll_s),
            immediately=True,
            on_success=self._synced,
            on_failure=self._failed,
            logger=logger,
        )

    def _synced(self) -> None:
        self.last_error = None

    def _failed(self, error: BaseException) -> bool:
        self.last_error = f"{type(error).__name__}: {error}"
        self.logger.error("%s could not sync", self.what, exc_info=error)
        return True


async def stop_all(tasks: list[Periodic]) -> None:
    """Stop every task: all are cancelled first, then each is waited for."""
    running = [task._task for task in tasks if task._task is not None]
    for task in tasks:
        if task._task is not None:
            task._task.cancel()
        task._task = None
    for handle in running:
        with contextlib.suppress(asyncio.CancelledError):
            await handle
