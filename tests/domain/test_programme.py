"""Programme rules: slugs, zones, durations, reordering, running time, overlaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from summitcast.domain import programme as rules
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit

T0 = datetime(2027, 7, 17, 16, 0, tzinfo=UTC)


def test_slugify_drops_accents_and_symbols() -> None:
    assert rules.slugify("Sommet d'Été 2027 — Ouverture!") == "sommet-d-ete-2027-ouverture"


@pytest.mark.parametrize("slug", ["ab", "-abc", "abc-", "ABC", "a b c", "x" * 65])
def test_validate_slug_refuses_unusable(slug: str) -> None:
    with pytest.raises(ValidationError):
        rules.validate_slug(slug)


def test_validate_time_zone_names_the_bad_zone() -> None:
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        rules.validate_time_zone("Mars/Olympus")


def test_validate_languages_deduplicates_in_order() -> None:
    assert rules.validate_languages(["en", " fr", "en", "pt-BR"]) == ("en", "fr", "pt-BR")


def test_validate_languages_refuses_words() -> None:
    with pytest.raises(ValidationError, match="English"):
        rules.validate_languages(["English"])


def test_validate_summit_dates_refuses_reversed() -> None:
    with pytest.raises(ValidationError, match="ends before"):
        rules.validate_summit_dates(date(2027, 7, 20), date(2027, 7, 17))


@pytest.mark.parametrize(
    ("text", "seconds"), [("8", 480), ("5:30", 330), ("1:05:30", 3930), ("0", 0)]
)
def test_parse_duration_reads_minutes_and_clock(text: str, seconds: int) -> None:
    assert rules.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "5:75", "-3", "1:2:3:4", "25:00:00"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValidationError):
        rules.parse_duration(text)


def test_format_duration_shows_hours_only_when_needed() -> None:
    assert (rules.format_duration(330), rules.format_duration(3930)) == ("5:30", "1:05:30")


def test_reorder_moves_one_item() -> None:
    assert rules.reorder([1, 2, 3, 4], 4, 1) == [1, 4, 2, 3]


def test_reorder_clamps_index_to_ends() -> None:
    assert rules.reorder([1, 2, 3], 1, 99) == [2, 3, 1]
    assert rules.reorder([1, 2, 3], 3, -5) == [3, 1, 2]


def test_reorder_refuses_foreign_item() -> None:
    with pytest.raises(ValidationError):
        rules.reorder([1, 2], 9, 0)


def test_check_full_order_refuses_missing_or_duplicate() -> None:
    with pytest.raises(ValidationError):
        rules.check_full_order([1, 2, 3], [1, 2])
    with pytest.raises(ValidationError):
        rules.check_full_order([1, 2, 3], [1, 1, 2, 3])
    assert rules.check_full_order([1, 2, 3], [3, 1, 2]) == [3, 1, 2]


def test_lay_out_places_items_end_to_end() -> None:
    laid = rules.lay_out(T0, [(1, 600), (2, 300)])
    assert laid == [
        rules.TimedItem(1, T0, T0 + timedelta(minutes=10)),
        rules.TimedItem(2, T0 + timedelta(minutes=10), T0 + timedelta(minutes=15)),
    ]


def test_session_timing_reports_overrun() -> None:
    timing = rules.session_timing(T0, T0 + timedelta(minutes=30), [900, 1200])
    assert (timing.overrun_seconds, timing.spare_seconds) == (300, 0)


def test_overlaps_finds_pairs_but_not_touching_windows() -> None:
    a = rules.Window(1, "A", T0, T0 + timedelta(hours=1))
    b = rules.Window(2, "B", T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    c = rules.Window(3, "C", T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))
    assert rules.overlaps([a, b, c]) == [(a, c), (c, b)]


def test_validate_window_refuses_naive_and_reversed() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        rules.validate_window(datetime(2027, 7, 17, 10), datetime(2027, 7, 17, 11))
    with pytest.raises(ValidationError, match="end after"):
        rules.validate_window(T0, T0)
