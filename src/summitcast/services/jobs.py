"""A durable job queue in the database, with an in-process worker by default.

Jobs are rows, so any node that can reach the database can work them: on
PostgreSQL a worker claims the oldest due job with ``SELECT … FOR UPDATE SKIP
LOCKED`` (workers never wait on each other's rows); on SQLite, which has one
writer at a time, a conditional ``UPDATE … WHERE state = 'queued'`` is the claim
and its row count says who won. A running job writes a heartbeat; a job whose
worker vanished (heartbeat older than ``stale_after_s``) is queued again.

Handlers raise ``PermanentJobError`` for a failure a retry cannot fix (its
message is shown as is); any other exception is retried with backoff up to
``max_attempts``, then shown as the failure reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from summitcast.storage.database import Database, connection_lost
from summitcast.storage.tables import Job, utcnow

logger = logging.getLogger(__name__)

RETRY_FIRST_S = 5.0
RETRY_CAP_S = 300.0
MESSAGE_LIMIT = 2000


class JobState(StrEnum):
    """Where a job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PermanentJobError(Exception):
    """A failure no retry can fix; the message is shown to people as the reason."""


class JobCancelledError(Exception):
    """Raised inside a handler when its worker is stopping; the job is queued again."""


@dataclass
class JobContext:
    """What a handler gets: its job, the database, a progress reporter and a stop flag."""

    job_id: int
    kind: str
    upload_id: int | None
    payload: dict[str, Any]
    attempt: int
    database: Database
    cancel: threading.Event = field(default_factory=threading.Event)
    failure: str = ""  # set before a failure hook runs: the reason shown to people
    _last_progress: float = 0.0

    def progress(self, fraction: float) -> None:
        """Record progress (0..1) and the heartbeat, at most about once a second."""
        now = time.monotonic()
        if now - self._last_progress < 1.0 and fraction < 1.0:
            return
        self._last_progress = now
        with self.database.session() as db:
            db.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.state == JobState.RUNNING.value)
                .values(progress=max(0.0, min(1.0, fraction)), heartbeat_at=utcnow())
            )
        if self.cancel.is_set():
            raise JobCancelledError(f"job {self.job_id} cancelled: worker stopping")


Handler = Callable[[JobContext], None]


def enqueue(
    db: DbSession,
    kind: str,
    *,
    upload_id: int | None = None,
    payload: Mapping[str, Any] | None = None,
    max_attempts: int = 3,
    run_after: datetime | None = None,
) -> Job:
    """Add a job; a worker picks it up once run_after has passed."""
    job = Job(
        kind=kind,
        upload_id=upload_id,
        payload=dict(payload or {}),
        state=JobState.QUEUED.value,
        max_attempts=max_attempts,
        run_after=run_after or utcnow(),
    )
    db.add(job)
    db.flush()
    return job


def claim(db: DbSession, worker_id: str, kinds: Sequence[str], *, now: datetime) -> Job | None:
    """Take the oldest due job of these kinds for this worker, or None when there is none."""
    due = (
        select(Job.id)
        .where(Job.state == JobState.QUEUED.value, Job.run_after <= now, Job.kind.in_(kinds))
        .order_by(Job.run_after, Job.id)
        .limit(1)
    )
    if db.get_bind().dialect.name == "postgresql":
        job_id = db.scalar(due.with_for_update(skip_locked=True))
    else:
        job_id = db.scalar(due)
    if job_id is None:
        return None
    won = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
        .values(
            state=JobState.RUNNING.value,
            claimed_by=worker_id,
            heartbeat_at=now,
            attempts=Job.attempts + 1,
            progress=0.0,
        )
    )
    if getattr(won, "rowcount", 0) != 1:
        return None  # another worker (SQLite) took it between our read and our write
    db.flush()
    job = db.get(Job, job_id)
    if job is not None:
        db.refresh(job)
    return job


def retry_delay(attempts: int) -> float:
    """Seconds before attempt number attempts+1: doubling from 5 s, capped at 5 minutes."""
    return float(min(RETRY_CAP_S, RETRY_FIRST_S * 2 ** max(0, attempts - 1)))


def finish(db: DbSession, job_id: int, *, now: datetime) -> None:
    """Mark a job done."""
    db.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state=JobState.DONE.value, progress=1.0, finished_at=now, message="")
    )


def fail(db: DbSession, job_id: int, message: str, *, permanent: bool, now: datetime) -> Job:
    """Record a failure: queue a retry, or fail for good when permanent or out of attempts."""
    job = db.get(Job, job_id)
    if job is None:
        raise LookupError(f"job {job_id} vanished")
    job.message = message[:MESSAGE_LIMIT]
    if permanent or job.attempts >= job.max_attempts:
        job.state = JobState.FAILED.value
        job.finished_at = now
    else:
        job.state = JobState.QUEUED.value
        job.run_after = now + timedelta(seconds=retry_delay(job.attempts))
    job.claimed_by = ""
    return job


def release(db: DbSession, job_id: int) -> None:
    """Put a job this worker gave up (it is stopping) back in the queue, attempt not counted."""
    db.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING.value)
        .values(state=JobState.QUEUED.value, claimed_by="", attempts=Job.attempts - 1)
    )


def requeue_stale(db: DbSession, *, now: datetime, stale_after_s: float) -> int:
    """Queue again the running jobs whose worker stopped sending heartbeats; return how many."""
    result = db.execute(
        update(Job)
        .where(
            Job.state == JobState.RUNNING.value,
            Job.heartbeat_at < now - timedelta(seconds=stale_after_s),
        )
        .values(state=JobState.QUEUED.value, claimed_by="", message="worker lost; retrying")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def jobs_of_upload(db: DbSession, upload_id: int) -> list[Job]:
    """The jobs of an upload, oldest first."""
    return list(db.scalars(select(Job).where(Job.upload_id == upload_id).order_by(Job.id)))


def default_worker_id() -> str:
    """host:pid, unique among the workers of a cluster."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass(frozen=True)
class Periodic:
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
        periodic: Sequence[Periodic] = (),
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
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._current: JobContext | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._database_away = False  # an outage is logged once, at its start

    async def start(self) -> None:
        """Start polling for jobs in the background."""
        if self._task is None:
            self._event_loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._loop(), name="job-worker")

    async def stop(self) -> None:
        """Stop after asking the running handler (if any) to give up; its job is queued again."""
        self._stopping = True
        self._wake.set()
        if self._current is not None:
            self._current.cancel.set()
        if self._task is not None:
            await self._task
            self._task = None

    def kick(self) -> None:
        """Look for work now instead of at the next poll; safe to call from any thread."""
        if self._event_loop is not None and not self._event_loop.is_closed():
            self._event_loop.call_soon_threadsafe(self._wake.set)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await asyncio.to_thread(self._run_periodic)
                worked = await asyncio.to_thread(self.run_once)
            except Exception as error:  # a database hiccup must not end the worker for good
                self._note_failure(error)
                worked = False
            else:
                if self._database_away:
                    logger.warning("job worker: database reachable again")
                    self._database_away = False
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    def _note_failure(self, error: Exception) -> None:
        """Log a failed iteration: a traceback, or one line for a whole database outage."""
        if not connection_lost(error):
            logger.error("job worker iteration failed", exc_info=error)
            return
        # A database restart fails every poll until it is back: one line, not one
        # traceback a poll interval.
        if not self._database_away:
            reason = " ".join(str(error).split())[:300]
            logger.warning("job worker: database unavailable (%s); retrying", reason)
        self._database_away = True

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
        with self.database.session() as db:
            requeue_stale(db, now=utcnow(), stale_after_s=self.stale_after_s)
            job = claim(db, self.worker_id, list(self.handlers), now=utcnow())
            if job is None:
                return False
            context = JobContext(
                job_id=job.id,
                kind=job.kind,
                upload_id=job.upload_id,
                payload=dict(job.payload),
                attempt=job.attempts,
                database=self.database,
            )
        self._current = context
        if self._stopping:
            context.cancel.set()
        try:
            self.handlers[context.kind](context)
        except JobCancelledError:
            with self.database.session() as db:
                release(db, context.job_id)
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
        with self.database.session() as db:
            finish(db, context.job_id, now=utcnow())
        return True

    def _record_failure(self, context: JobContext, message: str, *, permanent: bool) -> None:
        with self.database.session() as db:
            job = fail(db, context.job_id, message, permanent=permanent, now=utcnow())
            failed_for_good = job.state == JobState.FAILED.value
        if failed_for_good and (hook := self.on_failure.get(context.kind)):
            # Lets the owner of the job (say, an upload) show the reason where people look.
            context.failure = message[:MESSAGE_LIMIT]
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
