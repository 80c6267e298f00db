"""Tests for the attendance counting rule in summitcast.domain.attendance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.domain.attendance import (
    AttendanceTally,
    Bucket,
    CountingRule,
    CountryRow,
    LocationHeartbeats,
    SessionFigures,
    SessionWindow,
    bucket_start_of,
    bucketize,
    present_locations,
    public_countries,
    summarise,
)
from summitcast.domain.privacy import PRIVACY_LEVELS
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit

NOON = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
T0 = 1721217600  # NOON as epoch seconds, a multiple of 300


def _beats(start: datetime, minutes: float, every: int = 10) -> tuple[datetime, ...]:
    count = int(minutes * 60 // every)
    return tuple(start + timedelta(seconds=i * every) for i in range(count))


def _buckets(spec: dict[str, tuple[str, list[int]]], starts: list[int]) -> list[Bucket]:
    """Build buckets from key → (country, indexes into starts)."""
    return [
        Bucket(start, {key: country for key, (country, idx) in spec.items() if i in idx})
        for i, start in enumerate(starts)
    ]


def test_bucket_start_of_aligns_to_epoch() -> None:
    assert bucket_start_of(NOON, 300) == T0
    assert bucket_start_of(NOON + timedelta(seconds=299.9), 300) == T0
    assert bucket_start_of(NOON + timedelta(seconds=300), 300) == T0 + 300


def test_bucket_start_of_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="no time zone"):
        bucket_start_of(datetime(2024, 7, 17, 12, 0), 300)


def test_present_locations_needs_three_distinct_heartbeats_in_the_bucket() -> None:
    s = timedelta(seconds=1)
    heartbeats = {
        "three": [NOON, NOON + 10 * s, NOON + 20 * s],
        "two": [NOON, NOON + 10 * s],
        "replayed": [NOON, NOON, NOON + 10 * s],
        "edge": [NOON + 280 * s, NOON + 290 * s, NOON + 300 * s],
    }
    assert present_locations(heartbeats, T0) == frozenset({"three"})
    assert present_locations(heartbeats, T0 + 300) == frozenset()


def test_present_locations_unaligned_bucket_is_refused() -> None:
    with pytest.raises(ValidationError, match="not aligned"):
        present_locations({}, T0 + 1)


def test_session_window_bucket_starts_cover_overlapping_buckets() -> None:
    aligned = SessionWindow("a", NOON, NOON + timedelta(minutes=15))
    ragged = SessionWindow("b", NOON + timedelta(minutes=2), NOON + timedelta(minutes=7))
    assert list(aligned.bucket_starts(300)) == [T0, T0 + 300, T0 + 600]
    assert list(ragged.bucket_starts(300)) == [T0, T0 + 300]


def test_session_window_end_before_start_is_refused() -> None:
    with pytest.raises(ValidationError, match="ends before it starts"):
        SessionWindow("x", NOON, NOON)


def test_counting_rule_bad_parameters_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"0\.\.100"):
        CountingRule(session_min_percent=101)
    with pytest.raises(ValidationError, match="k must be"):
        CountingRule(k=0)


def test_bucketize_counts_only_session_buckets_with_enough_heartbeats() -> None:
    session = SessionWindow("s1", NOON, NOON + timedelta(minutes=15))
    locations = [
        LocationHeartbeats("x", "DE", "public", _beats(NOON, 15)),
        LocationHeartbeats("y", "FR", "public", _beats(NOON + timedelta(minutes=5), 1 / 3)),
        LocationHeartbeats(
            "z",
            "BR",
            "public",
            _beats(NOON - timedelta(minutes=5), 5)
            + _beats(NOON + timedelta(minutes=10), 0.5)
            + _beats(NOON + timedelta(hours=1), 5),
        ),
    ]
    assert bucketize(locations, [session]) == [
        Bucket(T0, {"x": "DE"}),
        Bucket(T0 + 300, {"x": "DE"}),
        Bucket(T0 + 600, {"x": "DE", "z": "BR"}),
    ]


def test_bucketize_duplicate_location_is_refused() -> None:
    session = SessionWindow("s1", NOON, NOON + timedelta(minutes=5))
    twice = [LocationHeartbeats("x", "DE", "public", ())] * 2
    with pytest.raises(ValidationError, match="appears twice"):
        bucketize(twice, [session])


def test_public_countries_hides_at_risk_hosts_and_rare_countries() -> None:
    buckets = [
        Bucket(T0, {"a": "DE", "b": "DE", "c": "FR", "h": "DE"}),
        Bucket(T0 + 300, {"d": "FR", "e": "IR"}),
    ]
    assert public_countries(buckets, frozenset({"h"}), k=2) == {
        "a": "DE",
        "b": "DE",
        "c": "FR",
        "d": "FR",
        "e": "ZZ",
        "h": "ZZ",
    }


SESSIONS = [
    SessionWindow("s1", NOON, NOON + timedelta(minutes=50)),
    SessionWindow("s2", NOON + timedelta(hours=2), NOON + timedelta(hours=2, minutes=20)),
]
S1 = [T0 + 300 * i for i in range(10)]
S2 = [T0 + 7200 + 300 * j for j in range(4)]
RULE = CountingRule(session_min_percent=30, k=2)


def _scenario() -> list[Bucket]:
    s1 = _buckets(
        {
            "a": ("DE", list(range(10))),
            "b": ("DE", [2, 3, 4, 5]),
            "c": ("FR", [0, 1]),
            "d": ("ZZ", [5, 6, 7]),
            "e": ("BR", [5]),
        },
        S1,
    )
    s2 = _buckets({"a": ("DE", [0, 1]), "c": ("FR", [0, 1, 2, 3]), "e": ("BR", [3])}, S2)
    return s1 + s2


def test_summarise_scenario_gives_exact_summit_figures() -> None:
    figures = summarise(_scenario(), SESSIONS, RULE)
    assert (figures.bucket_seconds, figures.min_heartbeats) == (300, 3)
    assert (figures.session_min_percent, figures.k) == (30, 2)
    assert figures.buckets == 14
    assert figures.entries == 27
    assert (figures.peak_concurrent, figures.peak_bucket_start) == (4, T0 + 1500)
    assert figures.distinct_locations == 4  # e is never present long enough
    assert figures.distinct_countries == 2  # DE, FR; ZZ is not a country
    assert figures.average_seconds_watched == 1875  # (12 + 4 + 3 + 6) × 300 / 4
    assert figures.countries == (CountryRow("DE", 2), CountryRow("other", 2))
    assert figures.suppressed_cells == 1
    assert figures.concurrent == tuple(
        zip(S1 + S2, [2, 2, 2, 2, 2, 4, 2, 2, 1, 1, 2, 2, 1, 2], strict=True)
    )


def test_summarise_scenario_gives_exact_session_figures() -> None:
    figures = summarise(_scenario(), SESSIONS, RULE)
    assert figures.sessions == (
        SessionFigures(
            slug="s1",
            buckets=10,
            counted_locations=3,  # a, b, d: c has 2 of 10 buckets, below 30 %
            peak_concurrent=4,
            peak_bucket_start=T0 + 1500,
            average_seconds_watched=1700,  # (10 + 4 + 3) × 300 / 3
            countries=(CountryRow("DE", 2), CountryRow("other", 1)),
            suppressed_cells=0,
        ),
        SessionFigures(
            slug="s2",
            buckets=4,
            counted_locations=2,
            peak_concurrent=2,
            peak_bucket_start=T0 + 7200,  # ties with later buckets: earliest wins
            average_seconds_watched=900,
            countries=(CountryRow("other", 2),),
            suppressed_cells=2,
        ),
    )


def test_summarise_at_least_one_bucket_when_percent_is_zero() -> None:
    rule = CountingRule(session_min_percent=0, k=1)
    figures = summarise(_scenario(), SESSIONS, rule)
    assert figures.distinct_locations == 5
    assert [s.counted_locations for s in figures.sessions] == [5, 3]


def test_summarise_no_buckets_gives_zero_and_no_peak_bucket() -> None:
    figures = summarise([], SESSIONS, RULE)
    assert (figures.buckets, figures.peak_concurrent, figures.peak_bucket_start) == (0, 0, None)
    assert (figures.distinct_locations, figures.average_seconds_watched) == (0, 0)
    assert figures.sessions[0].peak_bucket_start is None


def test_summarise_buckets_out_of_order_are_refused() -> None:
    buckets = _scenario()
    buckets[3], buckets[4] = buckets[4], buckets[3]
    with pytest.raises(ValidationError, match="does not come after"):
        summarise(buckets, SESSIONS, RULE)


def test_summarise_key_changing_country_is_refused() -> None:
    buckets = [Bucket(T0, {"a": "DE"}), Bucket(T0 + 300, {"a": "FR"})]
    with pytest.raises(ValidationError, match="a is in DE and in FR"):
        summarise(buckets, SESSIONS, RULE)


def test_tally_merged_from_interleaved_shares_equals_one_tally() -> None:
    shares = [AttendanceTally(SESSIONS, RULE) for _ in range(3)]
    for n, bucket in enumerate(_scenario()):
        shares[n % 3].add(bucket)

    merged = shares[0]
    conflicts = [merged.merge(share) for share in shares[1:]]

    assert conflicts == [[], []]
    assert merged.figures() == summarise(_scenario(), SESSIONS, RULE)


def test_tally_merge_names_a_key_in_two_countries() -> None:
    first, second = AttendanceTally(SESSIONS, RULE), AttendanceTally(SESSIONS, RULE)
    first.add(Bucket(T0, {"a": "DE"}))
    second.add(Bucket(T0 + 300, {"a": "FR"}))

    assert first.merge(second) == ["a is in DE and in FR"]


def test_location_heartbeats_privacy_levels_are_those_of_domain_privacy() -> None:
    levels = [LocationHeartbeats("x", "DE", level, ()).privacy for level in PRIVACY_LEVELS]
    assert levels == ["public", "country", "hidden"]


def test_location_heartbeats_old_coarse_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="privacy level 'coarse' is not one of"):
        LocationHeartbeats("x", "DE", "coarse", ())  # type: ignore[arg-type]
