"""The report's array counting (`attendance_data`) against the domain's rule applied plainly.

A random small summit: overlapping and unaligned sessions, one nobody attends,
locations joining and leaving with heartbeat counts around the minimum, counts split
over several writers' rows, buckets outside every session, an id in a packed row that
is no location, and another summit's locations and counts in the same tables.  The
reference turns the same heartbeats into buckets with `bucketize` and counts them with
`summarise` (a dictionary per bucket, as the rule reads), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session as DbSession

from summitcast.audit.log import figures_from_dict
from summitcast.config import Settings
from summitcast.domain.attendance import (
    OTHER_ROW,
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    Bucket,
    CountingRule,
    LocationHeartbeats,
    SessionWindow,
    bucketize,
    public_countries,
    summarise,
)
from summitcast.services import attendance, locations, programme
from summitcast.services.locations import LocationInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Summit
from tests.conftest import TEST_LINKS, make_summit

pytestmark = pytest.mark.integration

T0 = int(datetime(2027, 7, 17, 10, 0, tzinfo=UTC).timestamp())
# Offsets from T0 in seconds: two overlapping, unaligned sessions, one after a gap, and
# one on the next day that nobody attends (no peak bucket, average 0).
SESSIONS = ((0, 3600), (45 * 60 + 20, 100 * 60 + 7), (130 * 60, 150 * 60), (26 * 3600, 27 * 3600))
COUNTRIES = ("FR", "FR", "FR", "KE", "KE", "BR", "IR", "DE")
LEVELS = ("public", "public", "country", "hidden")
WRITERS = ("writer-a", "writer-b", "writer-c")


@dataclass
class Summitful:
    """The summit under test, its locations and the heartbeats counted for them."""

    summit: Summit
    locations: list[Location]
    beats: dict[tuple[int, int], int]  # (location index, bucket start) → heartbeats


def _register(db: DbSession, summit: Summit, rng: random.Random, n: int) -> list[Location]:
    made = []
    for i in range(n):
        location = locations.register_location(
            db,
            summit,
            LocationInput(
                label=f"Hall {i}", country=rng.choice(COUNTRIES), privacy_level=rng.choice(LEVELS)
            ),
            at_risk=frozenset(),
            links=TEST_LINKS,
        )
        locations.approve_location(db, location)
        made.append(location)
    return made


def _random_beats(
    rng: random.Random, locations_n: int, rule: CountingRule
) -> dict[tuple[int, int], int]:
    """Heartbeats per (location, bucket): online stretches, counts around the minimum."""
    size = rule.bucket_seconds
    first = T0 - 3 * size  # a few buckets before and after the sessions, which never count
    last = T0 + 150 * 60 + 3 * size
    beats = {}
    for index in range(locations_n):
        if index % 12 == 11:
            continue  # registered, never came
        online = rng.random() < 0.5
        for start in range(first - first % size, last, size):
            if index % 12 == 10 and start >= T0 - size:
                break  # came only before the sessions: seen by nobody's figures
            if rng.random() < 0.15:
                online = not online  # joins or leaves
            if online:
                n = rng.choice((30, 30, 12, rule.min_heartbeats, rule.min_heartbeats - 1, 1))
            else:
                n = rng.choice((0, 0, 0, 0, 1, 2))  # now and then a stray ping
            if n > 0:
                beats[index, start] = min(n, size)
    return beats


def _store(
    database: Database,
    summit_id: int,
    ids: Sequence[int],
    beats: dict[tuple[int, int], int],
    rng: random.Random,
) -> None:
    """Store the counts as the writers would: mostly one writer per location, some split."""
    rows: dict[tuple[int, str], dict[int, int]] = {}
    for (index, start), n in beats.items():
        parts = [n]
        if n > 1 and rng.random() < 0.3:
            cut = rng.randint(1, n - 1)  # this location's beats landed on two workers
            parts = [cut, n - cut]
        writers = rng.sample(WRITERS, len(parts))
        for writer, part in zip(writers, parts, strict=True):
            rows.setdefault((start, writer), {})[ids[index]] = part
    with database.session() as db:
        for (start, writer), counts in sorted(rows.items()):
            attendance.store_bucket_counts(db, summit_id, start, writer, counts)


def _make(database: Database, settings: Settings, seed: int) -> Summitful:
    """Two summits with interleaved location ids; counts for both; returns the first."""
    rng = random.Random(seed)
    rule = attendance.counting_rule(settings)
    summit = make_summit(database)
    other = make_summit(database, slug="other-summit")
    with database.session() as db:
        fresh = db.get(Summit, summit.id)
        neighbour = db.get(Summit, other.id)
        assert fresh is not None
        assert neighbour is not None
        for n, (start, end) in enumerate(SESSIONS):
            for target in (fresh, neighbour):
                programme.add_session(
                    db,
                    target,
                    programme.SessionInput(
                        title=f"Session {n + 1}",
                        planned_start=datetime.fromtimestamp(T0 + start, UTC),
                        planned_end=datetime.fromtimestamp(T0 + end, UTC),
                    ),
                )
        mine: list[Location] = []
        theirs: list[Location] = []
        for _ in range(6):  # interleaved ids: the summit's rows are not one block
            mine += _register(db, fresh, rng, 12)
            theirs += _register(db, neighbour, rng, 5)
        ids = [location.id for location in mine]
        their_ids = [location.id for location in theirs]
    beats = _random_beats(rng, len(mine), rule)
    _store(database, summit.id, ids, beats, rng)
    _store(database, other.id, their_ids, _random_beats(rng, len(theirs), rule), rng)
    # Ids that are no location of the summit (deleted since) linger in packed rows: one
    # between its locations' ids, one past them.
    lingering = {their_ids[len(their_ids) // 2]: 30, max(ids + their_ids) + 7: 30}
    with database.session() as db:
        for start in (T0, T0 + 20 * 60):
            attendance.store_bucket_counts(db, summit.id, start, "writer-a", lingering)
    return Summitful(summit, mine, beats)


def _reference(
    world: Summitful, windows: Sequence[SessionWindow], rule: CountingRule
) -> tuple[AttendanceFigures, list[tuple[str, int]]]:
    """The public figures and the exact country rows, by the domain's rule on plain dicts."""
    heartbeats = [
        LocationHeartbeats(
            location.public_id,
            location.country,
            location.privacy_level,  # type: ignore[arg-type]
            tuple(
                datetime.fromtimestamp(start + second, UTC)
                for (index, start), n in world.beats.items()
                if index == number
                for second in range(n)
            ),
        )
        for number, location in enumerate(world.locations)
    ]
    buckets = bucketize(heartbeats, windows, rule)
    hidden = frozenset(h.location_id for h in heartbeats if h.privacy == "hidden")

    def shown(country: dict[str, str]) -> list[Bucket]:
        return [Bucket(b.start, {key: country[key] for key in b.present}) for b in buckets]

    public = summarise(shown(public_countries(buckets, hidden, rule.k)), windows, rule)
    exact_country = {
        h.location_id: SUPPRESSED_COUNTRY if h.location_id in hidden else h.country
        for h in heartbeats
    }
    exact_rule = CountingRule(
        rule.bucket_seconds, rule.min_heartbeats, rule.session_min_percent, k=1
    )
    exact = summarise(shown(exact_country), windows, exact_rule)
    rows = [
        (SUPPRESSED_COUNTRY if row.country == OTHER_ROW else row.country, row.locations)
        for row in exact.countries
    ]
    return public, rows


RULES = [
    pytest.param(1, {}, id="default-rule"),
    pytest.param(
        2,
        {
            "attendance_bucket_s": 60,
            "attendance_min_heartbeats": 1,
            "attendance_session_min_percent": 0,
            "k_anonymity": 2,
        },
        id="minute-buckets-one-bucket-rule",
    ),
    pytest.param(
        3,
        {"attendance_min_heartbeats": 12, "attendance_session_min_percent": 50, "k_anonymity": 3},
        id="strict-rule",
    ),
]


@pytest.mark.parametrize(("seed", "rule_settings"), RULES)
def test_attendance_data_equals_the_domain_rule_on_a_random_summit(
    database: Database, settings: Settings, seed: int, rule_settings: dict[str, int]
) -> None:
    settings = settings.model_copy(update=rule_settings)
    rule = attendance.counting_rule(settings)
    world = _make(database, settings, seed)

    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
        assert summit is not None
        windows, _ = attendance.session_windows(db, summit)
        data = attendance.attendance_data(db, summit, settings)
        published = attendance.publish_attendance(db, summit, settings)
    public, exact = _reference(world, windows, rule)

    assert data.public == public
    assert list(data.exact.items()) == exact
    assert figures_from_dict(published.figures) == public
    # The random summit exercises what it is meant to.
    assert 0 < public.distinct_locations < len(world.locations)
    assert public.sessions[-1].peak_bucket_start is None
    assert public.entries > 0
