"""The durable job queue: claim, retry with backoff, visible failure, stale workers, stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.runtime.job_worker import JobWorker
from summitcast.services import jobs
from summitcast.storage.database import Database
from summitcast.storage.tables import Job

pytestmark = pytest.mark.integration
NOW = datetime(2027, 7, 17, 10, tzinfo=UTC)


def _job(database: Database, job_id: int) -> Job:
    with database.session() as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def test_claim_takes_each_job_once(database: Database) -> None:
    with database.session() as db:
        first = jobs.enqueue(db, "k", run_after=NOW - timedelta(seconds=2)).id
        jobs.enqueue(db, "k", run_after=NOW + timedelta(hours=1))  # not due yet
    with database.session() as db:
        a = jobs.claim(db, "w1", ["k"], now=NOW)
        assert a is not None
        claimed = (a.id, a.state, a.attempts, a.claimed_by)
    with database.session() as db:
        b = jobs.claim(db, "w2", ["k"], now=NOW)

    assert claimed == (first, "running", 1, "w1")
    assert b is None


def test_failing_handler_is_retried_then_shows_its_reason(database: Database) -> None:
    calls: list[int] = []

    def broken(context: jobs.JobContext) -> None:
        calls.append(context.attempt)
        raise RuntimeError("disk full")

    failed: list[str] = []
    worker = JobWorker(
        database, {"k": broken}, on_failure={"k": lambda c: failed.append(c.failure)}
    )
    with database.session() as db:
        job_id = jobs.enqueue(db, "k", max_attempts=2).id

    worker.run_once()
    after_first = _job(database, job_id)
    with database.session() as db:  # make the retry due now instead of in 5 s
        db.get(Job, job_id).run_after = datetime.now(UTC) - timedelta(seconds=1)
    worker.run_once()
    final = _job(database, job_id)

    assert (after_first.state, after_first.message) == ("queued", "RuntimeError: disk full")
    assert (final.state, final.attempts, final.message) == ("failed", 2, "RuntimeError: disk full")
    assert calls == [1, 2]
    assert failed == ["RuntimeError: disk full"]


def test_permanent_failure_is_not_retried(database: Database) -> None:
    def refuse(_context: jobs.JobContext) -> None:
        raise jobs.PermanentJobError("the file was deleted")

    worker = JobWorker(database, {"k": refuse})
    with database.session() as db:
        job_id = jobs.enqueue(db, "k", max_attempts=5).id

    worker.drain()

    job = _job(database, job_id)
    assert (job.state, job.attempts, job.message) == ("failed", 1, "the file was deleted")


def test_progress_and_success_are_recorded(database: Database) -> None:
    seen: list[float] = []

    def work(context: jobs.JobContext) -> None:
        context.progress(0.5)
        seen.append(_job(database, context.job_id).progress)

    worker = JobWorker(database, {"k": work})
    with database.session() as db:
        job_id = jobs.enqueue(db, "k").id

    assert worker.drain() == 1
    job = _job(database, job_id)
    assert (seen, job.state, job.progress) == ([0.5], "done", 1.0)


def test_job_of_a_vanished_worker_is_queued_again(database: Database) -> None:
    with database.session() as db:
        job_id = jobs.enqueue(db, "k", run_after=NOW - timedelta(minutes=10)).id
    with database.session() as db:
        jobs.claim(db, "gone", ["k"], now=NOW - timedelta(minutes=10))
    with database.session() as db:
        count = jobs.requeue_stale(db, now=NOW, stale_after_s=120)

    job = _job(database, job_id)
    assert (count, job.state, job.message) == (1, "queued", "worker lost; retrying")


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [jobs.retry_delay(n) for n in (1, 2, 3, 10)] == [5.0, 10.0, 20.0, 300.0]


def test_stopping_worker_requeues_its_running_job(database: Database) -> None:
    import asyncio
    import threading

    started = threading.Event()

    def slow(context: jobs.JobContext) -> None:
        started.set()
        while True:
            context._last_progress = 0.0  # report every time, so the stop flag is seen
            context.progress(0.1)
            context.cancel.wait(0.05)

    worker = JobWorker(database, {"k": slow}, poll_interval_s=0.05)
    with database.session() as db:
        job_id = jobs.enqueue(db, "k").id

    async def scenario() -> None:
        await worker.start()
        await asyncio.to_thread(started.wait, 10)
        await asyncio.wait_for(worker.stop(), 10)

    asyncio.run(scenario())

    job = _job(database, job_id)
    assert (job.state, job.attempts) == ("queued", 0)
