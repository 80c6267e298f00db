"""Watch locations: register, approve, revoke, list, export; what presence needs to know of one."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from summitcast import geo
from summitcast.domain import paging
from summitcast.domain.privacy import PRIVACY_LEVELS, PrivacyLevel, presence_country_key
from summitcast.errors import NotFoundError, ValidationError
from summitcast.presence.base import PresenceSnapshot
from summitcast.services.accounts import Actor
from summitcast.services.audit_trail import record_event, record_events
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.tables import Location, LocationSettings, PresenceSample, Summit, utcnow

STATUSES = ("pending", "approved", "revoked")
KINDS: dict[str, str] = {
    "home": "Home",
    "hall": "Hall or meeting room",
    "school": "School or university",
    "place_of_worship": "Place of worship",
    "public_space": "Square or public space",
    "other": "Other",
}
MAX_AUDIENCE = 1_000_000
BULK_SLICE = 1000
# Coordinates kept per privacy level: a public city's point (about 1 km), otherwise
# whole degrees (about 100 km), so a seized database cannot place an at-risk host.
_DECIMALS: dict[str, int] = {"public": 2, "country": 0, "hidden": 0}


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


def _text(value: str, field: str, *, limit: int, required: bool = False) -> str:
    cleaned = " ".join(value.split())
    if required and not cleaned:
        raise ValidationError(f"{FIELD_NAMES[field]} is required.", field=field)
    if len(cleaned) > limit:
        raise ValidationError(
            f"{FIELD_NAMES[field]} may have at most {limit} characters.", field=field
        )
    return cleaned


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


def resolve_privacy(chosen: str, country: str, at_risk: Collection[str]) -> PrivacyLevel:
    """The host's choice, or the default for the country when none was made."""
    if not chosen:
        return geo.default_privacy_for(country, at_risk)
    for level in PRIVACY_LEVELS:
        if chosen == level:
            return level
    raise ValidationError(
        f"{chosen!r} is not a choice for what the public may see: pick one of the options.",
        field="privacy_level",
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
    label = _text(data.label, "label", limit=200, required=True)
    country = validate_country(data.country)
    typed_city = _text(data.city, "city", limit=200)
    if data.kind not in KINDS:
        raise ValidationError(
            f"{data.kind!r} is not a kind of place: choose one from the list.", field="kind"
        )
    if not 1 <= data.expected_audience <= MAX_AUDIENCE:
        raise ValidationError(
            f"Expected audience must be between 1 and {MAX_AUDIENCE:,}.", field="expected_audience"
        )
    contact = _text(data.contact, "contact", limit=300)
    level = resolve_privacy(data.privacy_level, country, at_risk)
    city = geo.lookup_city(country, typed_city) if typed_city else None
    # An unknown city leaves the location at country level; only a public one keeps
    # its city name, so nothing finer than the country is stored for the others.
    decimals = _DECIMALS[level]
    public_id = secrets.token_urlsafe(12)
    location = Location(
        summit_id=summit.id,
        public_id=public_id,
        label=label,
        country=country,
        city=city.name if city is not None and level == "public" else "",
        lat=round(city.lat, decimals) if city is not None else None,
        lon=round(city.lon, decimals) if city is not None else None,
        kind=data.kind,
        expected_audience=data.expected_audience,
        contact=contact,
        privacy_level=level,
        status="pending",
        sealed_secret=links.new(public_id)[1],
    )
    if auto_approves(db, summit):
        location.status = "approved"
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

    def flush() -> None:
        if rows:
            # One INSERT per batch (SQLAlchemy's insertmanyvalues): 30,000 rows take
            # seconds instead of the minutes one flush per ORM object would.
            db.execute(insert(Location), rows)
            if on_batch is not None:
                on_batch(len(rows))
            rows.clear()

    for data in inputs:
        # The same rules as one registration; only the write is batched.
        label = _text(data.label, "label", limit=200, required=True)
        country = validate_country(data.country)
        typed_city = _text(data.city, "city", limit=200)
        if data.kind not in KINDS:
            raise ValidationError(
                f"{data.kind!r} is not a kind of place: choose one from the list.", field="kind"
            )
        if not 1 <= data.expected_audience <= MAX_AUDIENCE:
            raise ValidationError(
                f"Expected audience must be between 1 and {MAX_AUDIENCE:,}.",
                field="expected_audience",
            )
        level = resolve_privacy(data.privacy_level, country, at_risk)
        city = geo.lookup_city(country, typed_city) if typed_city else None
        decimals = _DECIMALS[level]
        public_id = secrets.token_urlsafe(12)
        secret, sealed = links.new(public_id)
        rows.append(
            {
                "summit_id": summit.id,
                "public_id": public_id,
                "label": label,
                "country": country,
                "city": city.name if city is not None and level == "public" else "",
                "lat": round(city.lat, decimals) if city is not None else None,
                "lon": round(city.lon, decimals) if city is not None else None,
                "kind": data.kind,
                "expected_audience": data.expected_audience,
                "contact": _text(data.contact, "contact", limit=300),
                "privacy_level": level,
                "status": "approved" if approve else "pending",
                "sealed_secret": sealed,
                "created_at": now,
                "approved_at": now if approve else None,
            }
        )
        made.append(BulkRegistered(public_id, secret, country))
        if len(rows) >= batch_size:
            flush()
    flush()
    return made


def get_location(db: DbSession, summit: Summit, location_id: int) -> Location:
    """A location of this summit by its row id; one of another summit is not found."""
    location = db.get(Location, location_id)
    if location is None or location.summit_id != summit.id:
        raise NotFoundError("No such location in this summit.")
    return location


def find_location(db: DbSession, public_id: str) -> Location:
    """A location by its public id."""
    location = db.scalar(select(Location).where(Location.public_id == public_id))
    if location is None:
        raise NotFoundError("No such location.")
    return location


LOCATION_SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first",
    "name": "name",
    "country": "country, then name",
}


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


def location_filter(*, status: str = "", country: str = "", text: str = "") -> LocationFilter:
    """A filter from what an organiser typed, checked: a known status, a country code."""
    status = status.strip()
    if status and status not in STATUSES:
        raise ValidationError(
            f"{status[:40]!r} is not a status: choose one of {', '.join(STATUSES)}.",
            field="status",
        )
    code = country.strip().upper()
    if code and not geo.valid_country(code):
        raise ValidationError(
            f"{country[:20]!r} is not a country code: use two letters, such as KE.",
            field="country",
        )
    return LocationFilter(status=status, country=code, text=paging.search_text(text))


@dataclass(frozen=True, slots=True)
class LocationPage:
    """One page of a summit's locations with the counts the review page shows."""

    rows: list[Location]
    page: paging.Page  # page.total: the locations the filter matches
    counts: dict[str, int]  # per status, the whole summit
    pending_matching: int  # pending locations the filter matches: what "approve all" approves
    # The newest location id when the page was read: "approve all" approves up to it, so
    # a location registered after the organiser looked is not approved unseen.
    newest_id: int

    @property
    def summit_total(self) -> int:
        """Every location of the summit, whatever its status."""
        return sum(self.counts.values())


def _matching(summit: Summit, chosen: LocationFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Location.summit_id == summit.id]
    if chosen.status:
        where.append(Location.status == chosen.status)
    if chosen.country:
        where.append(Location.country == chosen.country)
    if chosen.text:
        # autoescape: a typed % or _ is looked for, not taken as a wildcard.
        where.append(
            or_(
                Location.label.icontains(chosen.text, autoescape=True),
                Location.city.icontains(chosen.text, autoescape=True),
            )
        )
    return where


def _location_order(sort: str) -> list[ColumnElement[Any]]:
    # Newest by id, not created_at: ids follow insertion, bulk registrations share one
    # instant, and the primary key's index serves both directions without a sort.
    if sort == "oldest":
        return [Location.id.asc()]
    if sort == "name":
        return [func.lower(Location.label), Location.id.asc()]
    if sort == "country":
        return [Location.country.asc(), func.lower(Location.label), Location.id.asc()]
    return [Location.id.desc()]


def page_of_locations(
    db: DbSession,
    summit: Summit,
    chosen: LocationFilter = LocationFilter(),
    *,
    sort: str = "newest",
    page: int = 1,
    size: int = paging.DEFAULT_PAGE_SIZE,
) -> LocationPage:
    """One page of the locations the filter matches, in the order asked, with counts."""
    if sort not in LOCATION_SORTS:
        raise ValidationError(f"{sort!r} is not a way to sort locations.", field="sort")
    counts = status_counts(db, summit)
    pending_wanted = chosen.status in ("", "pending")
    if not (chosen.country or chosen.text):
        # The per-status counts answer both figures: no query beyond them.
        total = counts[chosen.status] if chosen.status else sum(counts.values())
        pending_matching = counts["pending"] if pending_wanted else 0
    else:
        total = _count(db, _matching(summit, chosen))
        if chosen.status == "pending":
            pending_matching = total
        elif pending_wanted:
            pending_matching = _count(db, _matching(summit, replace(chosen, status="pending")))
        else:
            pending_matching = 0
    # The newest id of the whole table (one index lookup): any location registered after
    # this page was read has a larger one, so "approve all" up to it approves what was seen.
    newest = int(db.scalar(select(func.max(Location.id))) or 0)
    shown = paging.Page.of(page, size, total)
    rows = db.scalars(
        select(Location)
        .where(*_matching(summit, chosen))
        .order_by(*_location_order(sort))
        .limit(shown.size)
        .offset(shown.offset)
    )
    return LocationPage(list(rows), shown, counts, pending_matching, newest)


def _count(db: DbSession, where: Sequence[ColumnElement[bool]]) -> int:
    return int(db.scalar(select(func.count()).select_from(Location).where(*where)) or 0)


def status_counts(db: DbSession, summit: Summit) -> dict[str, int]:
    """How many locations of the summit are pending, approved and revoked."""
    rows = db.execute(
        select(Location.status, func.count())
        .where(Location.summit_id == summit.id)
        .group_by(Location.status)
    )
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def approved_by_country(db: DbSession, summit: Summit) -> dict[str, int]:
    """Approved locations per country (hidden ones too: this is for organisers)."""
    rows = db.execute(
        select(Location.country, func.count())
        .where(Location.summit_id == summit.id, Location.status == "approved")
        .group_by(Location.country)
    )
    return {country: int(n) for country, n in sorted(rows)}


def approve_location(db: DbSession, location: Location, actor: Actor | None = None) -> Location:
    """Approve a pending or revoked location so its heartbeats count (audit-logged)."""
    _approve(location, utcnow())
    record_event(db, location.summit, actor, "location.approved", f"location:{location.id}")
    return location


def approve_selected(
    db: DbSession, summit: Summit, ids: Iterable[int], actor: Actor | None = None
) -> list[str]:
    """Approve the pending locations among ``ids`` of this summit; their public ids."""
    wanted = sorted(set(ids))
    approved: list[str] = []
    # In slices: SQLite takes at most 32,766 bound values in one statement.
    for start in range(0, len(wanted), BULK_SLICE):
        chunk = wanted[start : start + BULK_SLICE]
        approved += _approve_pending(db, summit, [Location.id.in_(chunk)], actor)
    return approved


def approve_matching(
    db: DbSession,
    summit: Summit,
    chosen: LocationFilter,
    actor: Actor | None = None,
    *,
    up_to_id: int,
) -> list[str]:
    """Approve every pending location the filter matches, up to id ``up_to_id``; public ids."""
    # Only pending ones, whatever status the filter names: a revoked location was taken
    # out on purpose and comes back only through its own row.
    where = _matching(summit, replace(chosen, status=""))
    return _approve_pending(db, summit, [*where, Location.id <= up_to_id], actor)


def _approve_pending(
    db: DbSession, summit: Summit, where: Sequence[ColumnElement[bool]], actor: Actor | None
) -> list[str]:
    now = utcnow()
    # One UPDATE … RETURNING for all of them, and one batched INSERT for their audit
    # events: 1,000 locations take milliseconds instead of 2,000 ORM round trips.
    statement = (
        update(Location)
        .where(Location.summit_id == summit.id, Location.status == "pending", *where)
        .values(status="approved", approved_at=now, revoked_at=None)
        .returning(Location.id, Location.public_id)
        .execution_options(synchronize_session="fetch")
    )
    changed = sorted((int(row[0]), str(row[1])) for row in db.execute(statement))
    subjects = [f"location:{location_id}" for location_id, _ in changed]
    record_events(db, summit, actor, "location.approved", subjects)
    return [public_id for _, public_id in changed]


def _approve(location: Location, now: datetime) -> None:
    location.status = "approved"
    location.approved_at = now
    location.revoked_at = None


def revoke_location(db: DbSession, location: Location, actor: Actor | None = None) -> Location:
    """Revoke a location: its heartbeats are refused from now on (audit-logged)."""
    location.status = "revoked"
    location.revoked_at = utcnow()
    record_event(db, location.summit, actor, "location.revoked", f"location:{location.id}")
    db.flush()
    return location


def reissue_link(db: DbSession, location: Location, actor: Actor | None, links: LinkSecrets) -> str:
    """Give a location a new secret (returned): its old link and its tokens stop counting."""
    # The public id stays: it names the location in the published attendance log,
    # which must keep following the same location across the new link.
    secret, location.sealed_secret = links.new(location.public_id)
    location.unsealed_secret = ""
    record_event(db, location.summit, actor, "location.link_reissued", f"location:{location.id}")
    db.flush()
    return secret


# The identities a worker holds, by public id: a refresh that finds a location's sealed
# secret unchanged reuses the one opened before instead of opening it again.
KnownIdentities = Mapping[str, PresenceIdentity | None]


def identity_of(
    location: Location, links: LinkSecrets, known: KnownIdentities | None = None
) -> PresenceIdentity:
    """What the heartbeat path needs of a location."""
    # Only a simulated location needs its summit read (real ones count everywhere).
    demo = bool(location.simulated) and location.summit.is_demo
    columns = (getattr(location, column.key) for column in _IDENTITY_COLUMNS)
    return _identity(*columns, demo_summit=demo, links=links, known=known or {})


# What an identity is made of: read as plain columns when thousands are loaded at once.
_IDENTITY_COLUMNS = (
    Location.summit_id,
    Location.public_id,
    Location.sealed_secret,
    Location.status,
    Location.privacy_level,
    Location.country,
    Location.city,
    Location.lat,
    Location.lon,
    Location.simulated,
)


def _identity(
    summit_id: int,
    public_id: str,
    sealed_secret: str,
    status: str,
    privacy_level: str,
    country: str,
    city: str | None,
    lat: float | None,
    lon: float | None,
    simulated: bool | None,
    *,
    demo_summit: bool,
    links: LinkSecrets,
    known: KnownIdentities,
) -> PresenceIdentity:
    before = known.get(public_id)
    if before is not None and before.sealed_secret == sealed_secret:
        secret = before.secret
    else:
        # Opened here, once per cache fill of a changed row, never per heartbeat (~4 µs).
        secret = links.open_sealed(public_id, sealed_secret).encode()
    level: PrivacyLevel = "public"
    for candidate in PRIVACY_LEVELS:
        if privacy_level == candidate:
            level = candidate
    public_city = level == "public" and city and lat is not None and lon is not None
    return PresenceIdentity(
        summit_key=str(summit_id),
        location_id=public_id,
        secret=secret,
        sealed_secret=sealed_secret,
        status=status,
        country_key=presence_country_key(country, level),
        cell_key=cell_key(country, city or "", lat or 0.0, lon or 0.0) if public_city else None,
        simulated_outside_demo=bool(simulated) and not demo_summit,
    )


def load_identity(
    db: DbSession, public_id: str, links: LinkSecrets, known: KnownIdentities | None = None
) -> PresenceIdentity | None:
    """The presence identity of a location by public id, or None when there is none."""
    location = db.scalar(select(Location).where(Location.public_id == public_id))
    return identity_of(location, links, known) if location is not None else None


def identities_of_live_summits(
    db: DbSession,
    links: LinkSecrets,
    *,
    after_id: int = 0,
    limit: int | None = None,
    known: KnownIdentities | None = None,
) -> tuple[list[PresenceIdentity], int]:
    """Identities of locations in summits with approved locations, by id after ``after_id``.

    Returns them with the last id read (``after_id`` again when there were none), so a
    caller can page through all of them ``limit`` at a time.
    """
    live = select(Location.summit_id).where(Location.status == "approved").distinct()
    # Columns, not ORM objects: every worker reloads all of them each sampling tick.
    query = (
        select(Location.id, *_IDENTITY_COLUMNS, Summit.is_demo)
        .join(Summit, Summit.id == Location.summit_id)
        .where(Location.summit_id.in_(live), Location.id > after_id)
        .order_by(Location.id)
        .limit(limit)
    )
    last = after_id
    identities = []
    for location_id, *columns, demo_summit in db.execute(query):
        identities.append(
            _identity(*columns, demo_summit=demo_summit, links=links, known=known or {})
        )
        last = location_id
    return identities, last


def live_summit_ids(db: DbSession) -> list[int]:
    """Summits with at least one approved location: those whose presence is swept and sampled."""
    rows = db.scalars(select(Location.summit_id).where(Location.status == "approved").distinct())
    return sorted(rows)


def record_transitions(
    db: DbSession, arrivals: Sequence[Transition], departures: Sequence[Transition]
) -> set[int]:
    """Store when locations last came online and went offline; returns the summits touched."""
    table = cast(Table, Location.__table__)
    for column, batch in (("last_online_at", arrivals), ("last_offline_at", departures)):
        if batch:
            # One executemany per column: 30,000 screens arriving at once were 30,000
            # separate UPDATE round trips from each worker's thread.
            statement = (
                update(table)
                .where(table.c.public_id == bindparam("pid"))
                .values({column: bindparam("at")})
            )
            db.execute(statement, [{"pid": t.location_id, "at": t.at} for t in batch])
    ids = sorted({t.location_id for t in (*arrivals, *departures)})
    summit_ids: set[int] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        where = Location.public_id.in_(chunk)
        summit_ids.update(db.scalars(select(Location.summit_id).where(where).distinct()))
    return summit_ids


def newest_arrivals(
    db: DbSession, summit: Summit, *, country: str = "", limit: int = 20
) -> list[Location]:
    """Locations that came online most recently."""
    query = select(Location).where(
        Location.summit_id == summit.id, Location.last_online_at.is_not(None)
    )
    if country:
        query = query.where(Location.country == country.strip().upper())
    return list(db.scalars(query.order_by(Location.last_online_at.desc()).limit(limit)))


def recent_drops(
    db: DbSession, summit: Summit, *, country: str = "", limit: int = 20
) -> list[Location]:
    """Locations whose presence timed out and that have not come back since."""
    query = select(Location).where(
        Location.summit_id == summit.id,
        Location.last_offline_at.is_not(None),
        (Location.last_online_at.is_(None)) | (Location.last_offline_at >= Location.last_online_at),
    )
    if country:
        query = query.where(Location.country == country.strip().upper())
    return list(db.scalars(query.order_by(Location.last_offline_at.desc()).limit(limit)))


def record_sample(db: DbSession, summit_id: int, at: datetime, snapshot: PresenceSnapshot) -> bool:
    """Store one presence sample; False when another worker stored this tick already."""
    values = {
        "summit_id": summit_id,
        "sampled_at": at,
        "online_total": snapshot.total,
        "peak": snapshot.peak,
        "by_country": dict(snapshot.by_country),
    }
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(PresenceSample)
        .values(values)
        .on_conflict_do_nothing(index_elements=["summit_id", "sampled_at"])
        .returning(PresenceSample.id)
    )
    # RETURNING, not rowcount: the ORM reports rowcount unreliably for this statement.
    return db.execute(statement).first() is not None


def samples_of(db: DbSession, summit: Summit) -> list[PresenceSample]:
    """A summit's presence samples, oldest first."""
    return list(
        db.scalars(
            select(PresenceSample)
            .where(PresenceSample.summit_id == summit.id)
            .order_by(PresenceSample.sampled_at)
        )
    )


CSV_COLUMNS = (
    "id",
    "label",
    "country",
    "city",
    "kind",
    "expected_audience",
    "privacy_level",
    "status",
    "contact",
    "created_at",
    "approved_at",
    "last_online_at",
    "last_offline_at",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def locations_csv(db: DbSession, summit: Summit) -> str:
    """Every location of the summit as CSV, for organisers (no secrets, no public ids)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    query = select(Location).where(Location.summit_id == summit.id).order_by(Location.id)
    for location in db.scalars(query):
        writer.writerow([_cell(getattr(location, column)) for column in CSV_COLUMNS])
    return out.getvalue()
