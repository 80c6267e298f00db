"""Reading watch locations: one by id, a filtered page for review, counts, arrivals and drops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast import geo
from summitcast.domain import paging
from summitcast.domain.locations import LOCATION_SORTS, STATUSES, LocationFilter, LocationStatus
from summitcast.errors import NotFoundError, ValidationError
from summitcast.services.locations.registration import auto_approves
from summitcast.services.programme import get_summit
from summitcast.storage.tables import Location, Summit


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


def registered_location(db: DbSession, slug: str, public_id: str) -> Location:
    """A location by its public id, as registered in the summit ``slug`` (else not found)."""
    summit = get_summit(db, slug)
    location = find_location(db, public_id)
    if location.summit_id != summit.id:
        raise NotFoundError("No such location.")
    return location


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


@dataclass(frozen=True, slots=True)
class ReviewListing:
    """What the organisers' review page shows: a page of locations and the auto-approval switch."""

    listed: LocationPage
    auto_approve: bool


def matching(summit: Summit, chosen: LocationFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of the summit's locations the filter matches."""
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


def review_listing(
    db: DbSession,
    summit: Summit,
    chosen: LocationFilter = LocationFilter(),
    *,
    sort: str = "newest",
    page: int = 1,
    size: int = paging.DEFAULT_PAGE_SIZE,
) -> ReviewListing:
    """The review page: one page of the locations the filter matches, and auto-approval."""
    listed = page_of_locations(db, summit, chosen, sort=sort, page=page, size=size)
    return ReviewListing(listed, auto_approves(db, summit))


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
    total, pending_matching = _matching_totals(db, summit, chosen, counts)
    # The newest id of the whole table (one index lookup): any location registered after
    # this page was read has a larger one, so "approve all" up to it approves what was seen.
    newest = int(db.scalar(select(func.max(Location.id))) or 0)
    shown = paging.Page.of(page, size, total)
    rows = db.scalars(
        select(Location)
        .where(*matching(summit, chosen))
        .order_by(*_location_order(sort))
        .limit(shown.size)
        .offset(shown.offset)
    )
    return LocationPage(list(rows), shown, counts, pending_matching, newest)


def _matching_totals(
    db: DbSession, summit: Summit, chosen: LocationFilter, counts: dict[str, int]
) -> tuple[int, int]:
    """How many locations the filter matches, and how many of those are pending."""
    pending = LocationStatus.PENDING
    pending_wanted = chosen.status in ("", pending)
    if not (chosen.country or chosen.text):
        # The per-status counts answer both figures: no query beyond them.
        total = counts[chosen.status] if chosen.status else sum(counts.values())
        return total, counts[pending] if pending_wanted else 0
    total = _count(db, matching(summit, chosen))
    if chosen.status == pending:
        return total, total
    if pending_wanted:
        return total, _count(db, matching(summit, replace(chosen, status=pending.value)))
    return total, 0


def _count(db: DbSession, where: Sequence[ColumnElement[bool]]) -> int:
    return int(db.scalar(select(func.count()).select_from(Location).where(*where)) or 0)


def status_counts(db: DbSession, summit: Summit) -> dict[str, int]:
    """How many locations of the summit are pending, approved and revoked."""
    rows = db.execute(
        select(Location.status, func.count())
        .where(Location.summit_id == summit.id)
        .group_by(Location.status)
    )
    counts = dict.fromkeys((status.value for status in STATUSES), 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def approved_by_country(db: DbSession, summit: Summit) -> dict[str, int]:
    """Approved locations per country (hidden ones too: this is for organisers)."""
    rows = db.execute(
        select(Location.country, func.count())
        .where(Location.summit_id == summit.id, Location.status == LocationStatus.APPROVED.value)
        .group_by(Location.country)
    )
    return {country: int(n) for country, n in sorted(rows)}


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
