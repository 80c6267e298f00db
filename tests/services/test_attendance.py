"""Attendance recording (memory → attendance_counts), publishing, a host's check and deletion."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from summitcast.audit.log import figures_from_dict, read_log
from summitcast.audit.verify import verify_log
from summitcast.config import Settings
from summitcast.errors import PermissionDeniedError
from summitcast.services import attendance, locations, programme
from summitcast.services.attendance import AttendanceRecorder
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import TEST_LINKS, make_summit

pytestmark = pytest.mark.integration

# 2027-07-17 10:00 UTC, inside make_summit's days.
T0 = int(datetime(2027, 7, 17, 10, 0, tzinfo=UTC).timestamp())


class Clock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """A summit with sessions and approved locations in a database."""

    database: Database
    settings: Settings
    summit: Summit
    locations: list[Location]


def make_world(
    database: Database,
    settings: Settings,
    countries: Sequence[tuple[str, str]],
    *,
    sessions: Sequence[tuple[int, int]] = ((0, 30 * 60),),
) -> World:
    """A summit with sessions (offsets in seconds from T0) and one location per (country, level)."""
    summit = make_summit(database)
    made = []
    with database.session() as db:
        fresh = db.get(Summit, summit.id)
        assert fresh is not None
        for n, (start, end) in enumerate(sessions):
            programme.add_session(
                db,
                fresh,
                programme.SessionInput(
                    title=f"Session {n + 1}",
                    planned_start=datetime.fromtimestamp(T0 + start, UTC),
                    planned_end=datetime.fromtimestamp(T0 + end, UTC),
                ),
            )
        for n, (country, level) in enumerate(countries):
            location = locations.register_location(
                db,
                fresh,
                LocationInput(
                    label=f"Hall {n}",
                    country=country,
                    city="",
                    contact=f"host{n}@example.org",
                    privacy_level=level,
                ),
                at_risk=frozenset(),
                links=LinkSecrets.of(settings),
            )
            locations.approve_location(db, location)
            made.append(location)
    return World(database, settings, summit, made)


def count_beats(
    recorder: AttendanceRecorder, clock: Clock, location: Location, times: Sequence[int]
) -> None:
    """Count heartbeats of a location at the given epoch seconds."""
    for moment in times:
        clock.now = moment
        recorder.count(location.public_id)


def rows(database: Database) -> list[tuple[int, int, int]]:
    """Every stored count, writers added up, as (location id, bucket start, heartbeats)."""
    with database.session() as db:
        counts: dict[tuple[int, int], int] = {}
        for summit in db.scalars(select(Summit)):
            counts.update(attendance.stored_counts(db, summit))
    return sorted((location_id, start, n) for (location_id, start), n in counts.items())


def test_recorder_take_returns_closed_buckets_only() -> None:
    clock = Clock(T0)
    recorder = AttendanceRecorder(300, clock)
    for moment in (T0, T0 + 10, T0 + 299, T0 + 300):
        clock.now = moment
        recorder.count("loc-a")

    clock.now = T0 + 301
    taken = recorder.take()

    assert dict(taken) == {("loc-a", T0): 3}
    assert recorder.pending == 1
    assert dict(recorder.take(everything=True)) == {("loc-a", T0 + 300): 1}
    assert recorder.pending == 0


def test_two_workers_flushing_one_bucket_add_up(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public"), ("KE", "public")])
    first, second = world.locations
    clock = Clock(T0)
    worker_a, worker_b = AttendanceRecorder(300, clock), AttendanceRecorder(300, clock)
    count_beats(worker_a, clock, first, [T0 + 1, T0 + 11, T0 + 21])
    count_beats(worker_b, clock, first, [T0 + 31, T0 + 41])
    count_beats(worker_b, clock, second, [T0 + 5, T0 + 305])
    clock.now = T0 + 310

    assert worker_a.flush_now(database, everything=False) == 1
    assert worker_b.flush_now(database, everything=False) == 2
    assert worker_a.flush_now(database, everything=False) == 0

    assert rows(database) == [(first.id, T0, 5), (second.id, T0, 1)]
    # The open bucket is written at shutdown, and a later flush adds to it.
    assert worker_b.flush_now(database, everything=True) == 1
    count_beats(worker_a, clock, second, [T0 + 315])
    worker_a.flush_now(database)
    assert rows(database) == [(first.id, T0, 5), (second.id, T0, 1), (second.id, T0 + 300, 2)]


def test_failed_flush_keeps_counts_for_the_next_one(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")])
    clock = Clock(T0)
    recorder = AttendanceRecorder(300, clock)
    count_beats(recorder, clock, world.locations[0], [T0, T0 + 10])
    broken = Database("sqlite:////nonexistent-folder/x.db")

    with pytest.raises(Exception):  # noqa: B017, PT011 - any database error will do
        recorder.flush_now(broken)

    assert recorder.pending == 1
    assert recorder.flush_now(database) == 1
    assert rows(database) == [(world.locations[0].id, T0, 2)]


def _attend(world: World, present: dict[int, Sequence[int]]) -> None:
    """Location index -> bucket offsets (in 5-minute buckets from T0) with 3 heartbeats each."""
    clock = Clock(T0)
    recorder = AttendanceRecorder(world.settings.attendance_bucket_s, clock)
    for index, buckets in present.items():
        for b in buckets:
            count_beats(
                recorder, clock, world.locations[index], [T0 + 300 * b + s for s in (0, 10, 20)]
            )
    recorder.flush_now(world.database)


def test_publish_writes_a_log_that_verifies_with_private_keys(
    database: Database, settings: Settings
) -> None:
    world = make_world(database, settings, [("FR", "public")] * 6 + [("IR", "hidden")] * 5)
    _attend(world, {i: range(6) for i in range(11)})

    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        publication = attendance.publish_attendance(db, summit, settings)
        path = attendance.published_log_path(settings, summit, publication)
        figures = figures_from_dict(publication.figures)
    report = verify_log(path)
    folder = settings.attendance_dir / "test-summit"

    assert report.problems == []
    assert report.figures == figures
    assert figures.distinct_locations == 11
    assert [(r.country, r.locations) for r in figures.countries] == [("FR", 6), ("other", 5)]
    assert stat.S_IMODE((folder / "signing-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "audit-secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_host_sees_own_buckets_with_a_checked_proof(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")] * 5)
    _attend(world, {0: [1, 2], 1: [0, 1, 2, 3], 2: [], 3: [5], 4: [0]})
    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        attendance.publish_attendance(db, summit, settings)
    host = world.locations[0]

    with database.session() as db:
        location = db.get(Location, host.id)
        assert location is not None
        result = attendance.host_inclusion(db, settings, location, TEST_LINKS.open(host))
        absent = attendance.host_inclusion(
            db,
            settings,
            location_of(db, world.locations[2]),
            TEST_LINKS.open(world.locations[2]),
        )
        with pytest.raises(PermissionDeniedError):
            attendance.host_inclusion(db, settings, location, TEST_LINKS.open(world.locations[1]))

    assert result.buckets == [T0 + 300, T0 + 600]
    assert result.proof_ok is True
    # Only four FR locations are in the log, fewer than k=5: the log shows ZZ.
    assert result.country == "ZZ"
    assert absent.buckets == []
    assert absent.published is True


def location_of(db: object, location: Location) -> Location:
    """The same location loaded in another session."""
    from sqlalchemy.orm import Session as DbSession

    assert isinstance(db, DbSession)
    found = db.get(Location, location.id)
    assert found is not None
    return found


def test_forgetting_host_data_keeps_log_and_figures(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")] * 6)
    _attend(world, {i: range(4) for i in range(6)})
    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        publication = attendance.publish_attendance(db, summit, settings)
        path = attendance.published_log_path(settings, summit, publication)
        before = attendance.attendance_data(db, summit, settings)
    host = world.locations[0]

    with database.session() as db:
        attendance.forget_host_data(db, settings, location_of(db, host), TEST_LINKS.open(host))
    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        forgotten = location_of(db, host)
        after = attendance.attendance_data(db, summit, settings)
        check = attendance.host_inclusion(db, settings, forgotten, TEST_LINKS.open(host))

    assert (forgotten.label, forgotten.contact) == ("", "")
    assert after.public == before.public
    assert verify_log(path).problems == []
    assert read_log(path).figures == figures_from_dict(publication.figures)
    assert check.buckets == [T0, T0 + 300, T0 + 600, T0 + 900]


def test_forgetting_with_wrong_secret_is_refused(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")])

    with database.session() as db, pytest.raises(PermissionDeniedError):
        attendance.forget_host_data(
            db, settings, location_of(db, world.locations[0]), "not-the-secret"
        )


def test_session_window_widens_to_the_broadcast(database: Database, settings: Settings) -> None:
    make_world(database, settings, [], sessions=((0, 3600),))
    from summitcast.storage.tables import Broadcast, Session

    with database.session() as db:
        session = db.scalars(select(Session)).one()
        db.add(
            Broadcast(
                session_id=session.id,
                summit_id=session.summit_id,
                ingest_key="k",
                started_at=datetime.fromtimestamp(T0 - 600, UTC),
                ended_at=datetime.fromtimestamp(T0 + 4000, UTC),
            )
        )
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        windows, titles = attendance.session_windows(db, summit)
        planned, _ = attendance.session_windows(db, summit, planned_only=True)

    assert [
        (w.slug, int(w.start.timestamp()) - T0, int(w.end.timestamp()) - T0) for w in windows
    ] == [("session-1", -600, 4000)]
    assert (int(planned[0].start.timestamp()) - T0, int(planned[0].end.timestamp()) - T0) == (
        0,
        3600,
    )
    assert titles == {"session-1": "Session 1"}


def test_keys_survive_and_are_reused(
    tmp_path: Path, database: Database, settings: Settings
) -> None:
    world = make_world(database, settings, [])
    first_key, first_secret = attendance.summit_keys(settings, world.summit)
    second_key, second_secret = attendance.summit_keys(settings, world.summit)

    assert attendance.public_key_b64(first_key) == attendance.public_key_b64(second_key)
    assert first_secret == second_secret
    assert len(first_secret) == 32


def _simulate(database: Database, location: Location, *, demo: bool) -> None:
    with database.session() as db:
        row = db.get(Location, location.id)
        assert row is not None
        row.simulated = True
        row.summit.is_demo = demo


@pytest.mark.parametrize("demo", [False, True])
def test_simulated_location_counts_only_towards_a_demo_summit(
    database: Database, settings: Settings, demo: bool
) -> None:
    world = make_world(database, settings, [("FR", "public"), ("KE", "public")])
    real, simulated = world.locations
    _simulate(database, simulated, demo=demo)
    clock = Clock(T0)
    recorder = AttendanceRecorder(300, clock)
    count_beats(recorder, clock, real, [T0, T0 + 10])
    count_beats(recorder, clock, simulated, [T0, T0 + 10])

    recorder.flush_now(database)

    expected = [(real.id, T0, 2), (simulated.id, T0, 2)] if demo else [(real.id, T0, 2)]
    assert rows(database) == expected
