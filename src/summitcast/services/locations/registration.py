"""Registering watch locations: one from the public form, many at once, auto-approval."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session as DbSession

from summitcast import geo
from summitcast.domain import locations as rules
from summitcast.domain.locations import LocationInput, LocationStatus
from summitcast.domain.privacy import PrivacyLevel
from summitcast.errors import ValidationError
from summitcast.services.accounts import Actor
from summitcast.services.audit_trail import record_event
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.tables import Location, LocationSettings, Summit, utcnow


def validate_country(code: str) -> str:
    """An ISO 3166-1 alpha-2 code in capitals (XK for Kosovo), or a ValidationError."""
    value = code.strip().upper()
    if not value:
        raise ValidationError("Country is required: choose one from the list.", field="country")
    if not geo.valid_country(value):
        raise ValidationError(
            f"{code!r} is not a country: choose one from the list.", field="country"
        )
    return value


@dataclass(frozen=True, slots=True)
class _Checked:
    """A registration's fields once checked, placed as coarsely as its privacy level asks."""

    label: str
    country: str
    city: str
    lat: float | None
    lon: float | None
    kind: str
    expected_audience: int
    contact: str
    privacy_level: PrivacyLevel

    def columns(self) -> dict[str, object]:
        return {
            "label": self.label,
            "country": self.country,
            "city": self.city,
            "lat": self.lat,
            "lon": self.lon,
            "kind": self.kind,
            "expected_audience": self.expected_audience,
            "contact": self.contact,
            "privacy_level": self.privacy_level,
        }


def _checked(data: LocationInput, at_risk: Collection[str]) -> _Checked:
    label = rules.clean_text(data.label, "label", limit=rules.MAX_LABEL, required=True)
    country = validate_country(data.country)
    typed_city = rules.clean_text(data.city, "city", limit=rules.MAX_CITY)
    kind = rules.check_kind(data.kind)
    audience = rules.check_audience(data.expected_audience)
    contact = rules.clean_text(data.contact, "contact", limit=rules.MAX_CONTACT)
    level = rules.resolve_privacy(data.privacy_level, country, at_risk)
    city = geo.lookup_city(country, typed_city) if typed_city else None
    # An unknown city leaves the location at country level; only a public one keeps
    # its city name, so nothing finer than the country is stored for the others.
    return _Checked(
        label=label,
        country=country,
        city=rules.kept_city(level, city.name) if city is not None else "",
        lat=rules.kept_coordinate(level, city.lat) if city is not None else None,
        lon=rules.kept_coordinate(level, city.lon) if city is not None else None,
        kind=kind,
        expected_audience=audience,
        contact=contact,
        privacy_level=level,
    )


def auto_approves(db: DbSession, summit: Summit) -> bool:
    """True when new locations of this summit are approved at once."""
    found = db.get(LocationSettings, summit.id)
    return found is not None and found.auto_approve


def set_auto_approve(
    db: DbSession, summit: Summit, enabled: bool, actor: Actor | None = None
) -> None:
    """Turn auto-approval of new locations on or off for one summit (a change is audit-logged)."""
    found = db.get(LocationSettings, summit.id)
    if found is None:
        found = LocationSettings(summit_id=summit.id, auto_approve=False)
        db.add(found)
    if found.auto_approve != enabled:
        found.auto_approve = enabled
        action = "locations.auto_approve_on" if enabled else "locations.auto_approve_off"
        record_event(db, summit, actor, action, f"summit:{summit.id}")
    db.flush()


def register_location(
    db: DbSession,
    summit: Summit,
    data: LocationInput,
    *,
    at_risk: Collection[str],
    links: LinkSecrets,
) -> Location:
    """Register a watch location (its secret sealed); pending unless the summit auto-approves."""
    checked = _checked(data, at_risk)
    public_id = secrets.token_urlsafe(12)
    location = Location(
        summit_id=summit.id,
        public_id=public_id,
        **checked.columns(),
        status=LocationStatus.PENDING.value,
        sealed_secret=links.new(public_id)[1],
    )
    status = rules.initial_status(auto_approves(db, summit))
    if status is LocationStatus.APPROVED:
        location.status = status.value
        location.approved_at = utcnow()
    db.add(location)
    db.flush()
    return location


@dataclass(frozen=True, slots=True)
class BulkRegistered:
    """A location made by register_locations_bulk: what a load tool needs to speak for it."""

    location_id: str  # the public id carried in heartbeat tokens
    secret: str  # in memory only: the table holds it sealed
    country: str


def register_locations_bulk(
    db: DbSession,
    summit: Summit,
    inputs: Iterable[LocationInput],
    *,
    links: LinkSecrets,
    approve: bool = True,
    at_risk: Collection[str] = frozenset(),
    batch_size: int = 1000,
    on_batch: Callable[[int], None] | None = None,
) -> list[BulkRegistered]:
    """Register many locations at once (load tests, imports), in executemany batches."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    made: list[BulkRegistered] = []
    rows: list[dict[str, object]] = []
    now = utcnow()
    for data in inputs:
        # The same rules as one registration; only the write is batched.
        checked = _checked(data, at_risk)
        public_id = secrets.token_urlsafe(12)
        secret, sealed = links.new(public_id)
        rows.append(_bulk_row(summit, checked, public_id, sealed, approve=approve, now=now))
        made.append(BulkRegistered(public_id, secret, checked.country))
        if len(rows) >= batch_size:
            _insert_batch(db, rows, on_batch)
    _insert_batch(db, rows, on_batch)
    return made


def _bulk_row(
    summit: Summit, checked: _Checked, public_id: str, sealed: str, *, approve: bool, now: datetime
) -> dict[str, object]:
    status = LocationStatus.APPROVED if approve else LocationStatus.PENDING
    return {
        "summit_id": summit.id,
        "public_id": public_id,
        **checked.columns(),
        "status": status.value,
        "sealed_secret": sealed,
        "created_at": now,
        "approved_at": now if approve else None,
    }


def _insert_batch(
    db: DbSession, rows: list[dict[str, object]], on_batch: Callable[[int], None] | None
) -> None:
    """Insert the rows gathered so far and empty the list."""
    if rows:
        # One INSERT per batch (SQLAlchemy's insertmanyvalues): 30,000 rows take
        # seconds instead of the minutes one flush per ORM object would.
        db.execute(insert(Location), rows)
        if on_batch is not None:
            on_batch(len(rows))
        rows.clear()
