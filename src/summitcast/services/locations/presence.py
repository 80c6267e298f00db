"""What presence needs of locations: identities for the heartbeat path, transitions, samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.locations import (
    LocationStatus,
    PresenceIdentity,
    Transition,
    cell_key,
    stored_privacy,
)
from summitcast.domain.privacy import presence_country_key
from summitcast.presence.base import PresenceSnapshot
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.tables import Location, PresenceSample, Summit

# The identities a worker holds, by public id: a refresh that finds a location's sealed
# secret unchanged reuses the one opened before instead of opening it again.
KnownIdentities = Mapping[str, PresenceIdentity | None]
APPROVED = LocationStatus.APPROVED.value


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
    level = stored_privacy(privacy_level)
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
    live = select(Location.summit_id).where(Location.status == APPROVED).distinct()
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
    rows = db.scalars(select(Location.summit_id).where(Location.status == APPROVED).distinct())
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
