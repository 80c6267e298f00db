"""Watch locations' rules: statuses, what a host may register, where a location is kept."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from summitcast.domain.privacy import PRIVACY_LEVELS, PrivacyLevel, default_privacy_for
from summitcast.errors import ValidationError


class LocationStatus(StrEnum):
    """Where a location stands: only an approved one's heartbeats count."""

    PENDING = "pending"
    APPROVED = "approved"
    REVOKED = "revoked"


# In the order the review page lists them.
STATUSES: tuple[LocationStatus, ...] = tuple(LocationStatus)

KINDS: dict[str, str] = {
    "home": "Home",
    "hall": "Hall or meeting room",
    "school": "School or university",
    "place_of_worship": "Place of worship",
    "public_space": "Square or public space",
    "other": "Other",
}
MAX_AUDIENCE = 1_000_000
MAX_LABEL = 200
MAX_CITY = 200
MAX_CONTACT = 300
# Coordinates kept per privacy level: a public city's point (about 1 km), otherwise
# whole degrees (about 100 km), so a seized database cannot place an at-risk host.
COORDINATE_DECIMALS: dict[str, int] = {"public": 2, "country": 0, "hidden": 0}

# What the registration form calls each field: a message names the field as the host sees it.
FIELD_NAMES: dict[str, str] = {
    "label": "Name of the place",
    "country": "Country",
    "city": "City or town",
    "kind": "Kind of place",
    "expected_audience": "Expected audience",
    "contact": "Contact for the organisers",
    "privacy_level": "What the public may see",
}

LOCATION_SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first",
    "name": "name",
    "country": "country, then name",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LocationInput:
    """What a host fills in on the registration form; privacy_level '' means the default."""

    label: str
    country: str
    city: str = ""
    kind: str = "other"
    expected_audience: int = 1
    contact: str = ""
    privacy_level: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocationFilter:
    """Which locations a list shows: one status, one country, text in the name or city."""

    status: str = ""
    country: str = ""
    text: str = ""

    @property
    def narrows(self) -> bool:
        """True when the filter leaves out some locations of the summit."""
        return bool(self.status or self.country or self.text)


@dataclass(frozen=True, slots=True)
class PresenceIdentity:
    """What the heartbeat path needs to know of a location, cached per worker."""

    summit_key: str
    location_id: str
    secret: bytes  # the link secret, opened once per cache fill ("" when it cannot be)
    sealed_secret: str  # as stored: a refresh that finds it unchanged keeps ``secret``
    status: str
    country_key: str  # the country it counts under in presence ("ZZ" when hidden)
    cell_key: str | None  # "CC|lat|lon|city" for a public city, else None
    # The demo's simulated audience counts only in a demo summit: elsewhere it is refused.
    simulated_outside_demo: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """A location that came online or went offline at a wall-clock instant."""

    location_id: str
    at: datetime


def clean_text(value: str, field: str, *, limit: int, required: bool = False) -> str:
    """The text with its whitespace runs made one space, or a ValidationError naming the field."""
    cleaned = " ".join(value.split())
    if required and not cleaned:
        raise ValidationError(f"{FIELD_NAMES[field]} is required.", field=field)
    if len(cleaned) > limit:
        raise ValidationError(
            f"{FIELD_NAMES[field]} may have at most {limit} characters.", field=field
        )
    return cleaned


def check_kind(kind: str) -> str:
    """A kind of place from KINDS, or a ValidationError."""
    if kind not in KINDS:
        raise ValidationError(
            f"{kind!r} is not a kind of place: choose one from the list.", field="kind"
        )
    return kind


def check_audience(expected: int) -> int:
    """An expected audience from 1 to MAX_AUDIENCE, or a ValidationError."""
    if not 1 <= expected <= MAX_AUDIENCE:
        raise ValidationError(
            f"Expected audience must be between 1 and {MAX_AUDIENCE:,}.",
            field="expected_audience",
        )
    return expected


def resolve_privacy(chosen: str, country: str, at_risk: Collection[str]) -> PrivacyLevel:
    """The host's choice, or the default for the country when none was made."""
    if not chosen:
        return default_privacy_for(country, at_risk)
    for level in PRIVACY_LEVELS:
        if chosen == level:
            return level
    raise ValidationError(
        f"{chosen!r} is not a choice for what the public may see: pick one of the options.",
        field="privacy_level",
    )


def stored_privacy(level: str) -> PrivacyLevel:
    """A stored privacy level as the type; an unknown one counts as public (as before)."""
    for candidate in PRIVACY_LEVELS:
        if level == candidate:
            return candidate
    return "public"


def kept_city(level: PrivacyLevel, name: str) -> str:
    """The city name kept for a location: only a public one keeps it."""
    return name if level == "public" else ""


def kept_coordinate(level: PrivacyLevel, value: float) -> float:
    """A coordinate rounded as finely as the privacy level allows to keep it."""
    return round(value, COORDINATE_DECIMALS[level])


def initial_status(auto_approve: bool) -> LocationStatus:
    """The status of a new registration: approved at once only when the summit says so."""
    return LocationStatus.APPROVED if auto_approve else LocationStatus.PENDING


def check_bulk_approvable(status: str) -> None:
    """Refuse "approve all" on a list of revoked or approved locations (only pending ones are)."""
    if status not in ("", LocationStatus.PENDING):
        raise ValidationError(
            f"Only pending locations can be approved; this list shows {status} ones.",
            field="status",
        )


def cell_key(country: str, city: str, lat: float, lon: float) -> str:
    """The presence key of a public city cell (the city name goes last: it may hold '|')."""
    return f"{country}|{lat:.2f}|{lon:.2f}|{city}"


def parse_cell_key(key: str) -> tuple[str, float, float, str] | None:
    """(country, lat, lon, city) of a cell key, or None when it is not one."""
    parts = key.split("|", 3)
    if len(parts) != 4:
        return None
    try:
        return parts[0], float(parts[1]), float(parts[2]), parts[3]
    except ValueError:
        return None
