"""Organisers' review of watch locations: approve, revoke, re-issue a link, and tell every worker.

The ``*_location``/``approve_selected``/``approve_matching`` functions change rows in the
caller's unit of work. The use cases below them (what the review page's buttons do)
commit first and then tell every worker through the live service, so that a worker that
re-reads the location at once sees the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.locations import LocationFilter, LocationStatus, check_bulk_approvable
from summitcast.presence.base import Message
from summitcast.services.accounts import Actor
from summitcast.services.audit_trail import record_event, record_events
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.locations.queries import (
    approved_by_country,
    get_location,
    matching,
    newest_arrivals,
    recent_drops,
    status_counts,
)
from summitcast.storage.tables import Location, Summit, utcnow

BULK_SLICE = 1000


class LocationsLive(Protocol):
    """The live service as the location pages see it (services.live.LiveService satisfies it)."""

    @property
    def links(self) -> LinkSecrets:
        """The link secrets of locations under the app key."""
        ...

    async def location_changed(self, summit_id: int, location_id: str, *, offline: bool) -> None:
        """Drop cached identities of the location on every worker (offline: out of presence)."""
        ...

    async def organiser_figures(self, summit_id: int) -> Message:
        """The live figures the organisers' dashboard shows."""
        ...


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
    where = matching(summit, replace(chosen, status=""))
    return _approve_pending(db, summit, [*where, Location.id <= up_to_id], actor)


def _approve_pending(
    db: DbSession, summit: Summit, where: Sequence[ColumnElement[bool]], actor: Actor | None
) -> list[str]:
    now = utcnow()
    # One UPDATE … RETURNING for all of them, and one batched INSERT for their audit
    # events: 1,000 locations take milliseconds instead of 2,000 ORM round trips.
    statement = (
        update(Location)
        .where(
            Location.summit_id == summit.id,
            Location.status == LocationStatus.PENDING.value,
            *where,
        )
        .values(status=LocationStatus.APPROVED.value, approved_at=now, revoked_at=None)
        .returning(Location.id, Location.public_id)
        .execution_options(synchronize_session="fetch")
    )
    changed = sorted((int(row[0]), str(row[1])) for row in db.execute(statement))
    subjects = [f"location:{location_id}" for location_id, _ in changed]
    record_events(db, summit, actor, "location.approved", subjects)
    return [public_id for _, public_id in changed]


def _approve(location: Location, now: datetime) -> None:
    location.status = LocationStatus.APPROVED.value
    location.approved_at = now
    location.revoked_at = None


def revoke_location(db: DbSession, location: Location, actor: Actor | None = None) -> Location:
    """Revoke a location: its heartbeats are refused from now on (audit-logged)."""
    location.status = LocationStatus.REVOKED.value
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


# --- what the review page's buttons do: change, commit, tell every worker ---------------


async def _announce(
    changes: LocationsLive, summit: Summit, public_ids: Iterable[str], *, offline: bool
) -> None:
    # Every worker drops its cached identity of these locations, so their next beats
    # count (approved) or are refused at once (offline).
    for public_id in public_ids:
        await changes.location_changed(summit.id, public_id, offline=offline)


async def approve_ticked(
    db: DbSession, summit: Summit, ids: Iterable[int], actor: Actor, changes: LocationsLive
) -> list[str]:
    """Approve the ticked pending locations of the summit and tell every worker; public ids."""
    approved = approve_selected(db, summit, ids, actor)
    db.commit()  # before other workers are told to re-read these locations
    await _announce(changes, summit, approved, offline=False)
    return approved


async def approve_all(
    db: DbSession,
    summit: Summit,
    chosen: LocationFilter,
    actor: Actor,
    changes: LocationsLive,
    *,
    up_to_id: int,
) -> list[str]:
    """Approve every pending location the filter matches up to ``up_to_id``; tell every worker."""
    check_bulk_approvable(chosen.status)
    approved = approve_matching(db, summit, chosen, actor, up_to_id=up_to_id)
    db.commit()
    await _announce(changes, summit, approved, offline=False)
    return approved


async def approve_again(
    db: DbSession, summit: Summit, location_id: int, actor: Actor, changes: LocationsLive
) -> Location:
    """Approve one location of the summit (a revoked one, say) and tell every worker."""
    location = approve_location(db, get_location(db, summit, location_id), actor)
    db.commit()
    await _announce(changes, summit, [location.public_id], offline=False)
    return location


async def revoke(
    db: DbSession, summit: Summit, location_id: int, actor: Actor, changes: LocationsLive
) -> Location:
    """Revoke one location of the summit and take it offline on every worker now."""
    location = revoke_location(db, get_location(db, summit, location_id), actor)
    db.commit()
    await _announce(changes, summit, [location.public_id], offline=True)
    return location


async def reissue(
    db: DbSession, summit: Summit, location_id: int, actor: Actor, changes: LocationsLive
) -> tuple[Location, str]:
    """Give one location of the summit a new secret link (returned) and take it offline now."""
    location = get_location(db, summit, location_id)
    secret = reissue_link(db, location, actor, changes.links)
    db.commit()  # before other workers are told to re-read the location
    # Offline now: whoever holds the old link must not keep it counted until the timeout.
    await _announce(changes, summit, [location.public_id], offline=True)
    return location, secret


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The organisers' live dashboard: figures from presence and the locations behind them."""

    figures: Message
    approved: dict[str, int]
    arrivals: list[Location]
    drops: list[Location]
    counts: dict[str, int]


async def dashboard(
    db: DbSession, summit: Summit, changes: LocationsLive, *, country: str = ""
) -> Dashboard:
    """Live figures for organisers: online now, peak, per country, arrivals and drops."""
    figures = await changes.organiser_figures(summit.id)
    return Dashboard(
        figures=figures,
        approved=approved_by_country(db, summit),
        arrivals=newest_arrivals(db, summit, country=country),
        drops=recent_drops(db, summit, country=country),
        counts=status_counts(db, summit),
    )
