"""Live publication: closed buckets appended while the summit runs, a signed head each round."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from summitcast.audit.merkle import verify_consistency
from summitcast.audit.verify import verify_log
from summitcast.config import Settings
from summitcast.errors import ConflictError
from summitcast.services import attendance
from summitcast.services.attendance import LivePublisher
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import TEST_LINKS
from tests.services.test_attendance import T0, World, _attend, make_world

pytestmark = pytest.mark.integration


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def _summit(world: World, db: object) -> Summit:
    summit = db.get(Summit, world.summit.id)  # type: ignore[attr-defined]
    assert summit is not None
    return summit


def test_live_log_grows_by_closed_buckets_and_finishes_as_the_publication(
    database: Database, settings: Settings
) -> None:
    world = make_world(database, settings, [("FR", "public")] * 6 + [("IR", "hidden")] * 2)
    _attend(world, {i: range(6) for i in range(8)})
    # Buckets 0 and 1 closed more than two flush intervals (60 s) ago; bucket 2 only 30 s.
    with database.session() as db:
        first = attendance.start_live_publishing(
            db, _summit(world, db), settings, clock=lambda: _at(930)
        )
    now = [_at(930)]
    publisher = LivePublisher(settings, database, clock=lambda: now[0])
    assert publisher.live_slugs() == ["test-summit"]
    now[0] = _at(1261)  # buckets 2 and 3 closed
    assert publisher.tick() == 1
    now[0] = _at(1300)  # another worker's timer, 39 s later: no second head this round
    assert publisher.tick() == 0
    now[0] = _at(1555)  # bucket 4 closed 55 s ago, within the grace: a fresher head
    assert publisher.tick() == 1
    with database.session() as db:
        summit = _summit(world, db)
        path = attendance.live_log_path(settings, summit)
        assert path is not None
        served = attendance.live_log_length(path)
        before = path.read_bytes()[:served]
        publication = attendance.publish_attendance(db, summit, settings, clock=lambda: _at(2000))
        heads = attendance.live_heads(settings, summit)
    report = verify_log(path)

    assert first.head.tree_size == 2 * 8
    assert [h.head.tree_size for h in heads] == [16, 32, 32, 48]
    assert report.ok, report.problems
    assert report.figures is not None
    assert report.figures.distinct_locations == 8
    assert publication.log_file == path.name
    assert publication.root_hash == heads[-1].head.root_hash.hex()
    assert path.read_bytes().startswith(before)  # nothing signed earlier was rewritten
    for old, new in itertools.pairwise(heads):
        assert verify_consistency(
            old.head.tree_size,
            new.head.tree_size,
            old.head.root_hash,
            new.head.root_hash,
            new.consistency,
        )
    assert publisher.live_slugs() == []
    with database.session() as db:
        location = db.get(Location, world.locations[0].id)
        assert location is not None
        host = attendance.host_inclusion(db, settings, location, TEST_LINKS.open(location))
    # Answered through the index built when the live log was finished.
    assert host.proof_ok, host.message
    assert host.buckets == [T0 + 300 * b for b in range(6)]
    assert (
        attendance.published_log_path(settings, summit, publication)
        .with_name(f"{path.name}.index")
        .is_file()
    )


def test_live_log_hides_a_country_with_fewer_than_k_newcomers(
    database: Database, settings: Settings
) -> None:
    world = make_world(database, settings, [("FR", "public")] * 5 + [("KE", "public")] * 2)
    _attend(world, {i: [0] for i in range(7)})
    with database.session() as db:
        attendance.start_live_publishing(db, _summit(world, db), settings, clock=lambda: _at(400))
        publication = attendance.publish_attendance(
            db, _summit(world, db), settings, clock=lambda: _at(4000)
        )

    rows = {row["country"]: row["locations"] for row in publication.figures["countries"]}
    assert rows == {"FR": 5, "other": 2}


def test_live_publishing_twice_is_refused(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")] * 5)
    with database.session() as db:
        attendance.start_live_publishing(db, _summit(world, db), settings, clock=lambda: _at(0))
        with pytest.raises(ConflictError, match="already on"):
            attendance.start_live_publishing(db, _summit(world, db), settings, clock=lambda: _at(5))


def test_unreadable_live_pointer_is_no_live_log(database: Database, settings: Settings) -> None:
    world = make_world(database, settings, [("FR", "public")] * 5)
    folder = settings.attendance_dir / "test-summit"
    folder.mkdir(parents=True)
    (folder / "live.json").write_text("{not json", encoding="utf-8")

    with database.session() as db:
        summit = _summit(world, db)
        assert attendance.live_log_path(settings, summit) is None
        assert attendance.live_heads(settings, summit) == []
    assert LivePublisher(settings, database).live_slugs() == []
