"""A durable job queue in the database (its worker: ``summitcast.runtime.job_worker``).

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

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from summitcast.storage.database import Database
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


# --- units of work for the worker (runtime.job_worker) ------------------------------------


def claim_next(
    database: Database, worker_id: str, kinds: Sequence[str], *, stale_after_s: float
) -> JobContext | None:
    """Queue stale jobs again, then claim the oldest due one of these kinds; its context."""
    with database.session() as db:
        requeue_stale(db, now=utcnow(), stale_after_s=stale_after_s)
        job = claim(db, worker_id, list(kinds), now=utcnow())
        if job is None:
            return None
        return JobContext(
            job_id=job.id,
            kind=job.kind,
            upload_id=job.upload_id,
            payload=dict(job.payload),
            attempt=job.attempts,
            database=database,
        )


def finish_now(database: Database, job_id: int) -> None:
    """finish in a unit of work of its own."""
    with database.session() as db:
        finish(db, job_id, now=utcnow())


def release_now(database: Database, job_id: int) -> None:
    """release in a unit of work of its own."""
    with database.session() as db:
        release(db, job_id)


def fail_now(database: Database, job_id: int, message: str, *, permanent: bool) -> bool:
    """fail in a unit of work of its own; True when the job failed for good."""
    with database.session() as db:
        return fail(db, job_id, message, permanent=permanent, now=utcnow()).state == JobState.FAILED
