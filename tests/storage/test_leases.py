"""Leases in the database and their in-memory twin: one holder at a time, renewals, expiry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from summitcast.storage.database import Database
from summitcast.storage.leases import InMemoryLeases, Leases, SqlLeases, encoder_leases
from tests.conftest import scratch_postgres

T0 = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def leases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Leases]:
    """The in-memory twin, or the table of a migrated SQLite or PostgreSQL database."""
    if request.param == "memory":
        yield InMemoryLeases()
        return
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'leases.db'}")
        database.upgrade()
    else:
        database = Database(request.getfixturevalue("postgres_url"))
        with database.engine.begin() as connection:
            connection.execute(delete(encoder_leases))
    yield SqlLeases(database.engine)
    database.dispose()


@pytest.mark.integration
def test_first_holder_takes_the_lease_and_others_are_refused(leases: Leases) -> None:
    assert leases.acquire("broadcast", "a/1", 6, T0)
    assert not leases.acquire("broadcast", "b/1", 6, T0 + timedelta(seconds=1))
    assert leases.holder("broadcast", T0 + timedelta(seconds=1)) == "a/1"


@pytest.mark.integration
def test_holder_renews_and_the_lease_runs_from_the_renewal(leases: Leases) -> None:
    leases.acquire("broadcast", "a/1", 6, T0)
    assert leases.acquire("broadcast", "a/1", 6, T0 + timedelta(seconds=4))

    assert not leases.acquire("broadcast", "b/1", 6, T0 + timedelta(seconds=9))
    assert leases.holder("broadcast", T0 + timedelta(seconds=9)) == "a/1"


@pytest.mark.integration
def test_an_expired_lease_goes_to_the_next_contender(leases: Leases) -> None:
    leases.acquire("broadcast", "a/1", 6, T0)

    assert leases.holder("broadcast", T0 + timedelta(seconds=7)) is None
    assert leases.acquire("broadcast", "b/1", 6, T0 + timedelta(seconds=7))
    # The old holder, back, finds it taken: it is the backup now.
    assert not leases.acquire("broadcast", "a/1", 6, T0 + timedelta(seconds=8))
    assert leases.holder("broadcast", T0 + timedelta(seconds=8)) == "b/1"


@pytest.mark.integration
def test_release_hands_the_lease_over_at_once_but_only_by_its_holder(leases: Leases) -> None:
    leases.acquire("broadcast", "a/1", 6, T0)
    leases.release("broadcast", "b/1")
    assert leases.holder("broadcast", T0) == "a/1"

    leases.release("broadcast", "a/1")

    assert leases.holder("broadcast", T0) is None
    assert leases.acquire("broadcast", "b/1", 6, T0 + timedelta(seconds=1))


@pytest.mark.integration
def test_leases_of_different_names_are_independent(leases: Leases) -> None:
    assert leases.acquire("broadcast", "a/1", 6, T0)
    assert leases.acquire("other", "b/1", 6, T0)


def _contend(leases: Leases, rounds: int) -> list[tuple[bool, bool]]:
    """Two holders ask at the same instant, round after round; each round's results."""
    barrier = threading.Barrier(2)
    outcomes: list[tuple[bool, bool]] = []

    def ask(holder: str, now: datetime) -> bool:
        barrier.wait()
        return leases.acquire("broadcast", holder, 5, now)

    with ThreadPoolExecutor(2) as pool:
        for index in range(rounds):
            # Each round comes after the last one's lease expired, so both may take it:
            # by UPDATE of the expired row, or (after a release) by INSERT of a new one.
            now = T0 + timedelta(seconds=10 * index)
            first = pool.submit(ask, "a/1", now)
            second = pool.submit(ask, "b/1", now)
            outcome = (first.result(), second.result())
            outcomes.append(outcome)
            if index % 3 == 0:
                winner = "a/1" if outcome[0] else "b/1"
                leases.release("broadcast", winner)
    return outcomes


@pytest.mark.postgres
@pytest.mark.integration
def test_two_contenders_on_postgresql_never_both_hold_the_lease() -> None:
    with scratch_postgres("summitcast_lease") as url:
        database = Database(url)
        database.upgrade()
        try:
            outcomes = _contend(SqlLeases(database.engine), rounds=60)
        finally:
            database.dispose()

    assert all(sum(outcome) == 1 for outcome in outcomes), outcomes
    assert {True, False} == {a for a, _b in outcomes}  # each won some rounds: a real race


@pytest.mark.integration
def test_two_contenders_on_sqlite_never_both_hold_the_lease(database: Database) -> None:
    outcomes = _contend(SqlLeases(database.engine), rounds=30)

    assert all(sum(outcome) == 1 for outcome in outcomes), outcomes
