"""k-anonymous public views and privacy levels."""

from __future__ import annotations

import pytest

from summitcast.domain.privacy import (
    UNDISCLOSED,
    CityCell,
    PrivacyLevel,
    PublicCity,
    PublicMap,
    default_privacy_for,
    presence_country_key,
    public_city_cells,
    public_country_counts,
)

pytestmark = pytest.mark.unit


def test_public_country_counts_suppresses_below_k() -> None:
    shown, suppressed = public_country_counts({"DE": 12, "FR": 5, "IR": 4, "BY": 1, "NZ": 0}, k=5)
    assert shown == {"DE": 12, "FR": 5}
    assert suppressed == 5


def test_public_country_counts_undisclosed_never_shown() -> None:
    shown, suppressed = public_country_counts({"DE": 7, UNDISCLOSED: 40}, k=5)
    assert shown == {"DE": 7}
    assert suppressed == 40


def test_public_country_counts_k_one_shows_everything_positive() -> None:
    assert public_country_counts({"DE": 1, "FR": 0}, k=1) == ({"DE": 1}, 0)


def test_public_country_counts_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k must"):
        public_country_counts({"DE": 1}, k=0)
    with pytest.raises(ValueError, match="negative"):
        public_country_counts({"DE": -1}, k=5)


def cell(country: str, city: str, level: PrivacyLevel, count: int) -> CityCell:
    points = {"Berlin": (52.52, 13.41), "Bonn": (50.73, 7.10), "Paris": (48.85, 2.35)}
    lat, lon = points.get(city, (0.0, 0.0))
    return CityCell(country, city, lat, lon, level, count)


def test_public_city_cells_small_city_merges_into_country() -> None:
    result = public_city_cells(
        [cell("DE", "Berlin", "public", 6), cell("DE", "Bonn", "public", 2)], k=5
    )
    assert result == PublicMap(
        cities=[PublicCity("DE", "Berlin", 52.52, 13.41, 6)],
        countries={"DE": 8},
        suppressed_total=0,
        total=8,
    )


def test_public_city_cells_country_level_never_becomes_a_dot() -> None:
    result = public_city_cells(
        [cell("IR", "Tehran", "country", 30), cell("IR", "Tehran", "public", 2)], k=5
    )
    assert result.cities == []
    assert result.countries == {"IR": 32}


def test_public_city_cells_hidden_counts_only_in_total() -> None:
    result = public_city_cells(
        [cell("BY", "Minsk", "hidden", 9), cell("FR", "Paris", "public", 5)], k=5
    )
    assert result == PublicMap(
        cities=[PublicCity("FR", "Paris", 48.85, 2.35, 5)],
        countries={"FR": 5},
        suppressed_total=9,
        total=14,
    )


def test_public_city_cells_merges_cells_of_one_city_before_k() -> None:
    result = public_city_cells(
        [cell("DE", "Berlin", "public", 3), cell("DE", "Berlin", "public", 2)], k=5
    )
    assert result.cities == [PublicCity("DE", "Berlin", 52.52, 13.41, 5)]


def test_public_city_cells_small_country_is_suppressed_whole() -> None:
    result = public_city_cells(
        [
            cell("NZ", "Auckland", "public", 3),
            cell("NZ", "Wellington", "country", 1),
            cell("DE", "Berlin", "public", 5),
        ],
        k=5,
    )
    assert result == PublicMap(
        cities=[PublicCity("DE", "Berlin", 52.52, 13.41, 5)],
        countries={"DE": 5},
        suppressed_total=4,
        total=9,
    )


def test_public_city_cells_empty() -> None:
    assert public_city_cells([], k=5) == PublicMap([], {}, 0, 0)


def test_default_privacy_for_at_risk_country_is_country_level() -> None:
    assert default_privacy_for("IR", frozenset({"IR", "BY"})) == "country"
    assert default_privacy_for("ir", frozenset({"IR"})) == "country"
    assert default_privacy_for("DE", frozenset({"IR"})) == "public"
    assert default_privacy_for("IR") == "public"  # nothing is at risk by default


def test_presence_country_key_hides_country_of_hidden_locations() -> None:
    assert presence_country_key("BY", "hidden") == UNDISCLOSED
    assert presence_country_key("BY", "country") == "BY"
    assert presence_country_key("DE", "public") == "DE"
