"""Offline city lookup and country codes."""

from __future__ import annotations

import time

import pytest

from summitcast import geo
from summitcast.geo import City, country_name, lookup_city, normalize_name, valid_country

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("country", "typed", "expected"),
    [
        ("DE", "München", "Munich"),
        ("DE", "munchen", "Munich"),
        ("DE", "  MUNICH ", "Munich"),
        ("RU", "Москва", "Moscow"),
        ("BR", "sao paulo", "São Paulo"),
        ("CH", "Zurich", "Zürich"),
        ("PL", "lodz", "Łódź"),
        ("US", "Saint Louis", "St. Louis"),
        ("US", "st louis", "St. Louis"),
        ("ES", "San Sebastian", "Donostia / San Sebastián"),
        ("XK", "Pristina", "Pristina"),
        ("fr", "Paris", "Paris"),
    ],
)
def test_lookup_city_forgives_case_accents_and_aliases(
    country: str, typed: str, expected: str
) -> None:
    city = lookup_city(country, typed)
    assert city is not None
    assert city.name == expected
    assert city.country == country.upper()


def test_lookup_city_returns_coordinates_and_population() -> None:
    assert lookup_city("FR", "Paris") == City(
        name="Paris", lat=48.85341, lon=2.3488, population=2138551, country="FR", geonameid=2988507
    )


def test_lookup_city_picks_the_largest_of_equal_names() -> None:
    city = lookup_city("US", "Springfield")
    assert city is not None
    assert city.geonameid == 4409896  # Springfield, Missouri


def test_lookup_city_other_country_or_unknown_is_none() -> None:
    assert lookup_city("FR", "Munich") is None
    assert lookup_city("DE", "Nowhereville") is None
    assert lookup_city("DE", " - ") is None


def test_lookup_city_after_load_is_fast() -> None:
    lookup_city("DE", "Berlin")  # builds the index once
    start = time.perf_counter()
    for _ in range(1000):
        lookup_city("DE", "Frankfurt am Main")
    assert (time.perf_counter() - start) / 1000 < 0.001


def test_city_index_is_built_once() -> None:
    assert geo.city_index() is geo.city_index()


def test_city_index_unknown_data_set_raises() -> None:
    with pytest.raises(ValueError, match="min_population"):
        geo.CityIndex(min_population=42)


def test_normalize_name_folds_case_accents_punctuation() -> None:
    assert normalize_name("  Saint-Étienne ") == "saint etienne"
    assert normalize_name("St. Gallen") == "saint gallen"
    assert normalize_name("Straße") == "strasse"


def test_valid_country_codes() -> None:
    assert valid_country("DE") is True
    assert valid_country("de") is True
    assert valid_country("XK") is True
    assert valid_country("ZZ") is False
    assert valid_country("DEU") is False
    assert valid_country("") is False


def test_country_name_prefers_common_name() -> None:
    assert country_name("DE") == "Germany"
    assert country_name("IR") == "Iran"
    assert country_name("TW") == "Taiwan"
    assert country_name("XK") == "Kosovo"
    assert country_name("ZZ") is None


def test_default_privacy_for_is_exported() -> None:
    assert geo.default_privacy_for("BY", frozenset({"BY"})) == "country"
    assert len(geo.AT_RISK_DEFAULT) == 0
