"""The job worker: claims the database's queued jobs and runs them in a thread, one at a time.

The queue itself (claims, retries, heartbeats) is ``summitcast.services.jobs``; this is
the long-running loop around it, started and stopped with the app (app.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from summitcast.runtime.periodic import RUN_AGAIN, Backoff, Periodic
from summitcast.services import Database, jobs
from summitcast.services.jobs import Handler, JobCancelledError, JobContext, PermanentJobError
from summitcast.storage.database import connection_lost

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """host:pid, unique among the workers of a cluster."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass(frozen=True)
class PeriodicChore:
    """A task the worker runs every interval_s seconds (say, deleting expired uploads)."""

    name: str
    interval_s: float
    run: Callable[[], object]


class JobWorker:
    """Claims and runs jobs one at a time in a thread, so the event loop stays free."""

    def __init__(
        self,
        database: Database,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str | None = None,
        poll_interval_s: float = 1.0,
        stale_after_s: float = 120.0,
        periodic: Sequence[PeriodicChore] = (),
        on_failure: Mapping[str, Handler] | None = None,
    ) -> None:
        self.database = database
        self.handlers = dict(handlers)
        # Per kind: called once a job has failed for good (its reason in context.failure).
        self.on_failure = dict(on_failure or {})
        self.worker_id = worker_id or default_worker_id()
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self.periodic = list(periodic)
        self._next_periodic = {p.name: 0.0 for p in self.periodic}
        # Every poll_s, or at once when kicked or after a job was done; a failed
        # iteration (a database hiccup) is retried at the same pace.
        self._poller = Periodic(
            "job-worker",
            self._iteration,
            poll_interval_s,
            backoff=Backoff(first_s=poll_interval_s, cap_s=poll_interval_s),
            immediately=True,
            on_success=self._reachable,
            on_failure=self._note_failure,
            logger=logger,
        )
        self._stopping = False
        self._current: JobContext | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._database_away = False  # an outage is logged once, at its start

    async def start(self) -> None:
        """Start polling for jobs in the background."""
        self._event_loop = asyncio.get_running_loop()
        self._poller.start()

    async def stop(self) -> None:
        """Stop after asking the running handler (if any) to give up; its job is queued again."""
        self._stopping = True
        if self._current is not None:
            self._current.cancel.set()
        await self._poller.stop(graceful=True)

    def kick(self) -> None:
        """Look for work now instead of at the next poll; safe to call from any thread."""
        if self._event_loop is not None and not self._event_loop.is_closed():
            self._event_loop.call_soon_threadsafe(self._poller.wake)

    async def _iteration(self) -> object:
        await asyncio.to_thread(self._run_periodic)
        worked = await asyncio.to_thread(self.run_once)
        return RUN_AGAIN if worked else None  # a job was done: look for the next at once

    def _reachable(self) -> None:
        if self._database_away:
            logger.warning("job worker: database reachable again")
            self._database_away = False

    def _note_failure(self, error: BaseException) -> bool:
        """Log a failed iteration: a traceback, or one line for a whole database outage."""
        if not connection_lost(error):
            logger.error("job worker iteration failed", exc_info=error)
            return True
        # A database restart fails every poll until it is back: one line, not one
        # traceback a poll interval.
        if not self._database_away:
            reason = " ".join(str(error).split())[:300]
            logger.warning("job worker: database unavailable (%s); retrying", reason)
        self._database_away = True
        return True

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for task in self.periodic:
            if now >= self._next_periodic[task.name]:
                self._next_periodic[task.name] = now + task.interval_s
                try:
                    task.run()
                except Exception as error:
                    if connection_lost(error):
                        raise  # the loop logs a database outage once
                    logger.exception("periodic task %s failed", task.name)

    def run_once(self) -> bool:
        """Claim and run one due job in this thread; False when there was none."""
        context = jobs.claim_next(
            self.database, self.worker_id, list(self.handlers), stale_after_s=self.stale_after_s
        )
        if context is None:
            return False
        self._current = context
        if self._stopping:
            context.cancel.set()
        try:
            self.handlers[context.kind](context)
        except JobCancelledError:
            jobs.release_now(self.database, context.job_id)
            return True
        except PermanentJobError as exc:
            self._record_failure(context, str(exc), permanent=True)
            return True
        except Exception as exc:  # never let one bad file end the worker
            logger.exception("job %s (%s) failed", context.job_id, context.kind)
            self._record_failure(context, f"{type(exc).__name__}: {exc}", permanent=False)
            return True
        finally:
            self._current = None
        jobs.finish_now(self.database, context.job_id)
        return True

    def _record_failure(self, context: JobContext, message: str, *, permanent: bool) -> None:
        failed_for_good = jobs.fail_now(self.database, context.job_id, message, permanent=permanent)
        if failed_for_good and (hook := self.on_failure.get(context.kind)):
            # Lets the owner of the job (say, an upload) show the reason where people look.
            context.failure = message[: jobs.MESSAGE_LIMIT]
            try:
                hook(context)
            except Exception:
                logger.exception("failure hook of job %s failed", context.job_id)

    def drain(self, *, limit: int = 100) -> int:
        """Run due jobs until none is left (tests, CLI); return how many ran."""
        ran = 0
        while ran < limit and self.run_once():
            ran += 1
        return ran
