"""The audit trail of organisers' actions: append-only, no secrets, no addresses."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.services.accounts import Actor
from summitcast.storage.tables import AuditEvent, Summit


def record_event(
    db: DbSession, summit: Summit, actor: Actor | None, action: str, subject: str
) -> AuditEvent:
    """Append one event: ``action`` ("location.link_reissued") on ``subject`` ("location:42")."""
    event = AuditEvent(
        summit_id=summit.id,
        user_id=actor.user_id if actor is not None else None,
        action=action,
        subject=subject,
    )
    db.add(event)
    db.flush()
    return event


def events_of(db: DbSession, summit: Summit, *, subject: str = "") -> list[AuditEvent]:
    """A summit's events, oldest first, optionally about one subject."""
    query = select(AuditEvent).where(AuditEvent.summit_id == summit.id)
    if subject:
        query = query.where(AuditEvent.subject == subject)
    return list(db.scalars(query.order_by(AuditEvent.id)))
