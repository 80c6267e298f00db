"""Privacy rules for public views: privacy levels and k-anonymous counts and map cells.

Levels: ``public`` locations may appear as a city dot; ``country`` locations only
ever add to their country's total; ``hidden`` locations only add to the overall
total (not even their country is shown). Any country or city cell holding fewer
than ``k`` locations is not shown on its own: a small city merges into its
country, a small country into ``suppressed_total`` ("elsewhere").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

PrivacyLevel = Literal["public", "country", "hidden"]
PRIVACY_LEVELS: tuple[PrivacyLevel, ...] = ("public", "country", "hidden")

# Country key under which hidden locations are counted in presence back-ends, so
# their real country is never stored in the shared, fast-changing counters. "ZZ" is
# ISO 3166's user-assigned "unknown", the same code domain.attendance suppresses.
UNDISCLOSED = "ZZ"

# The rules' own default is empty: Settings carries the set, by default the list shipped in
# summitcast/data/at_risk_countries.txt (config.shipped_at_risk_countries).
AT_RISK_DEFAULT: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CityCell:
    """How many locations sit in one city with one privacy level."""

    country: str
    city: str
    lat: float
    lon: float
    privacy_level: PrivacyLevel
    count: int


@dataclass(frozen=True, slots=True)
class PublicCity:
    """A city dot that may be shown publicly."""

    country: str
    city: str
    lat: float
    lon: float
    count: int


@dataclass(frozen=True, slots=True)
class PublicMap:
    """What a public map may show: dots, country totals and what is left unattributed."""

    cities: list[PublicCity]
    countries: dict[str, int]
    suppressed_total: int
    total: int


def default_privacy_for(country: str, at_risk: Collection[str] = AT_RISK_DEFAULT) -> PrivacyLevel:
    """Return 'country' for a country in the at-risk set, else 'public'."""
    return "country" if country.upper() in at_risk else "public"


def presence_country_key(country: str, privacy_level: PrivacyLevel) -> str:
    """The country under which a location is counted in presence (UNDISCLOSED when hidden)."""
    return UNDISCLOSED if privacy_level == "hidden" else country


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1: {k}")


def public_country_counts(counts: Mapping[str, int], k: int) -> tuple[dict[str, int], int]:
    """Split per-country counts into those shown (>= k) and the total of the rest."""
    _check_k(k)
    shown: dict[str, int] = {}
    suppressed_total = 0
    for country, count in counts.items():
        if count < 0:
            raise ValueError(f"negative count for {country}: {count}")
        if country != UNDISCLOSED and count >= k:
            shown[country] = count
        else:
            suppressed_total += count
    return dict(sorted(shown.items())), suppressed_total


def public_city_cells(cells: Iterable[CityCell], k: int) -> PublicMap:
    """Build the public map: dots only for public cities with >= k locations, k-anonymous totals."""
    _check_k(k)
    city_counts: dict[tuple[str, str], int] = {}
    city_points: dict[tuple[str, str], tuple[float, float]] = {}
    country_counts: dict[str, int] = {}
    hidden = 0
    for cell in cells:
        if cell.count < 0:
            raise ValueError(f"negative count for {cell.country}/{cell.city}: {cell.count}")
        if cell.privacy_level == "hidden":
            hidden += cell.count
            continue
        country_counts[cell.country] = country_counts.get(cell.country, 0) + cell.count
        # Fail safe: any level other than 'public' (domain.attendance spells the
        # country level 'coarse') stays at country level and never becomes a dot.
        if cell.privacy_level == "public":
            key = (cell.country, cell.city)
            city_counts[key] = city_counts.get(key, 0) + cell.count
            # Several cells of one city are merged; the first one's point stands for all.
            city_points.setdefault(key, (cell.lat, cell.lon))
    # Country-level locations never reach a dot, but they still add to the country
    # total below; public cities under k simply stay inside that total.
    shown, suppressed = public_country_counts(country_counts, k)
    cities = [
        PublicCity(country, city, *city_points[(country, city)], count)
        for (country, city), count in sorted(city_counts.items())
        if count >= k and country in shown
    ]
    total = sum(country_counts.values()) + hidden
    return PublicMap(cities, shown, suppressed + hidden, total)
