"""The audit trail of organisers' actions: append-only, no secrets, no addresses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import paging
from summitcast.errors import ValidationError
from summitcast.services.accounts import Actor
from summitcast.storage.tables import AuditEvent, Item, Location, Speaker, Summit, User, utcnow

# Every kind of event, with what the audit page calls it; record_event refuses others,
# so the page's filter always offers every kind there is.
KINDS: dict[str, str] = {
    "location.approved": "Location approved",
    "location.revoked": "Location revoked",
    "location.link_reissued": "Location link re-issued",
    "locations.auto_approve_on": "Automatic approval turned on",
    "locations.auto_approve_off": "Automatic approval turned off",
    "item.approved": "Speech approved for air",
    "item.retake_requested": "New recording asked of the speaker",
    # A live speaker's own way onto the broadcast: who gave out a key, who put it on air.
    "greenroom.feed_opened": "Speaker's live feed opened (ingest key issued)",
    "greenroom.feed_taken": "Speaker's live feed taken on air",
    "greenroom.feed_released": "Speaker's live feed taken off air",
    "greenroom.feed_closed": "Speaker's live feed closed (key revoked)",
}
PAGE_SIZE = paging.DEFAULT_PAGE_SIZE
MAX_PAGE = paging.MAX_PAGE
AUDIT_SORTS: dict[str, str] = {"newest": "newest first", "oldest": "oldest first"}


def record_event(
    db: DbSession, summit: Summit, actor: Actor | None, action: str, subject: str
) -> AuditEvent:
    """Append one event: ``action`` ("location.link_reissued") on ``subject`` ("location:42")."""
    _check_kind(action)
    event = AuditEvent(
        summit_id=summit.id,
        user_id=actor.user_id if actor is not None else None,
        action=action,
        subject=subject,
    )
    db.add(event)
    db.flush()
    return event


def record_events(
    db: DbSession, summit: Summit, actor: Actor | None, action: str, subjects: Sequence[str]
) -> int:
    """Append one event of the same action per subject, in one batched INSERT; how many."""
    _check_kind(action)
    if not subjects:
        return 0
    user_id = actor.user_id if actor is not None else None
    now = utcnow()
    rows = [
        {
            "summit_id": summit.id,
            "user_id": user_id,
            "action": action,
            "subject": subject,
            "created_at": now,
        }
        for subject in subjects
    ]
    # Core executemany, not ORM objects: "approve all" writes thousands of these at once.
    db.execute(insert(AuditEvent), rows)
    return len(rows)


def _check_kind(action: str) -> None:
    if action not in KINDS:
        raise ValueError(f"{action!r} is not a kind of audit event; add it to KINDS")


def events_of(db: DbSession, summit: Summit, *, subject: str = "") -> list[AuditEvent]:
    """A summit's events, oldest first, optionally about one subject."""
    query = select(AuditEvent).where(AuditEvent.summit_id == summit.id)
    if subject:
        query = query.where(AuditEvent.subject == subject)
    return list(db.scalars(query.order_by(AuditEvent.id)))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event as the audit page shows it."""

    at: datetime
    kind: str
    what: str  # the kind's label
    subject: str  # "location:42"
    subject_name: str  # the location's label or the item's title; "" when gone
    author: str  # the user's display name; "" when the system did it or the user is gone


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of a summit's events."""

    entries: list[AuditEntry]
    page: paging.Page

    @property
    def total(self) -> int:
        """Events the filter matches."""
        return self.page.total

    @property
    def pages(self) -> int:
        """How many pages of them there are (at least 1)."""
        return self.page.pages


def page_of_events(
    db: DbSession,
    summit: Summit,
    *,
    kind: str = "",
    page: int = 1,
    sort: str = "newest",
    size: int = PAGE_SIZE,
) -> AuditPage:
    """A page of the summit's events, newest (or oldest) first, optionally of one kind."""
    if kind and kind not in KINDS:
        raise ValidationError(
            f"{kind!r} is not a kind of event: choose one from the list.", field="kind"
        )
    if not 1 <= page <= MAX_PAGE:
        raise ValidationError(f"Page must be from 1 to {MAX_PAGE:,}.", field="page")
    if sort not in AUDIT_SORTS:
        raise ValidationError(f"{sort!r} is not a way to sort the trail.", field="sort")
    where = [AuditEvent.summit_id == summit.id]
    if kind:
        where.append(AuditEvent.action == kind)
    total = db.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    shown = paging.Page.of(page, size, total)
    # By id, not by time: ids follow insertion even when clocks tie.
    order = AuditEvent.id.asc() if sort == "oldest" else AuditEvent.id.desc()
    rows = db.execute(
        select(AuditEvent, User.display_name)
        .outerjoin(User, User.id == AuditEvent.user_id)
        .where(*where)
        .order_by(order)
        .limit(shown.size)
        .offset(shown.offset)
    ).all()
    names = _subject_names(db, summit, [event.subject for event, _ in rows])
    entries = [
        AuditEntry(
            at=event.created_at,
            kind=event.action,
            what=KINDS.get(event.action, event.action),
            subject=event.subject,
            subject_name=names.get(event.subject, ""),
            author=author or "",
        )
        for event, author in rows
    ]
    return AuditPage(entries, shown)


def _subject_names(db: DbSession, summit: Summit, subjects: list[str]) -> dict[str, str]:
    """Labels of the locations, titles of the items and names of the speakers, of this summit."""
    ids: dict[str, set[int]] = {"location": set(), "item": set(), "speaker": set()}
    for subject in subjects:
        kind, _, number = subject.partition(":")
        if kind in ids and number.isdecimal():
            ids[kind].add(int(number))
    names: dict[str, str] = {}
    if ids["location"]:
        query = select(Location.id, Location.label).where(
            Location.summit_id == summit.id, Location.id.in_(ids["location"])
        )
        names.update({f"location:{i}": label for i, label in db.execute(query)})
    if ids["item"]:
        query = select(Item.id, Item.title).where(
            Item.summit_id == summit.id, Item.id.in_(ids["item"])
        )
        names.update({f"item:{i}": title for i, title in db.execute(query)})
    if ids["speaker"]:
        query = select(Speaker.id, Speaker.name).where(
            Speaker.summit_id == summit.id, Speaker.id.in_(ids["speaker"])
        )
        names.update({f"speaker:{i}": name for i, name in db.execute(query)})
    return names
