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
    """

    name: str
    step: Step
    interval_s: float
    backoff: Backoff = field(default_factory=Backoff)
    immediately: bool = False
    expected: tuple[type[BaseException], ...] = ()
    on_expected: ErrorHook | None = None
    on_success: Callable[[], None] | None = None
    logger: logging.Logger = log
    failures: int = 0
    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Run the step forever (until cancelled)."""
        if not self.immediately:
            await asyncio.sleep(self.interval_s)
        while True:
            await self.run_once()
            await asyncio.sleep(max(self.interval_s, self.backoff.delay(self.failures)))

    async def run_once(self) -> bool:
        """Run the step once; True when it succeeded (a failure is logged, not raised)."""
        try:
            await self.step()
        except asyncio.CancelledError:
            raise
        except self.expected as error:
            self.failures += 1
            if self.on_expected is not None:
                self.on_expected(self.name, error)
            else:
                self.logger.warning("%s failed: %s; retrying", self.name, error)
            return False
        except Exception:
            self.failures += 1
            self.logger.exception("%s failed; retrying", self.name)
            return False
        self.failures = 0
        if self.on_success is not None:
            self.on_success()
        return True

    def start(self) -> asyncio.Task[None]:
        """Start running in the background (needs a running event loop); returns the task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=self.name)
        return self._task

    @property
    def running(self) -> bool:
        """Whether the background task runs."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the background task and wait until it has ended; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
