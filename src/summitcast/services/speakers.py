"""Speaker invitations (signed, expiring, revocable links), the portal's view, and approval.

A link's token is ``<public id>.<expiry>.<signature>``: the HMAC over the first two
parts is checked before the database is asked anything, so forged tokens cost
nothing; the row then says whether the organisers revoked it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain import paging
from summitcast.domain.programme import ItemKind, ItemStatus, TimedItem
from summitcast.domain.uploads import FINAL_STATES, UploadState
from summitcast.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from summitcast.services import jobs, notifications
from summitcast.services.accounts import Actor
from summitcast.services.audit_trail import record_event
from summitcast.services.programme import get_item, timed_items
from summitcast.storage.tables import (
    Item,
    ItemSpeaker,
    Job,
    Notice,
    Speaker,
    SpeakerInvitation,
    Summit,
    Upload,
    utcnow,
)

TOKEN_CONTEXT = b"summitcast/speaker-invitation/v1"
INVALID_LINK = "This link is not valid. Check that you copied all of it, or ask the organisers."
# Statuses in which the speaker may still send a new file; after approval the organisers decide.
UPLOAD_OPEN = frozenset(
    {
        ItemStatus.PLANNED,
        ItemStatus.MISSING,
        ItemStatus.UPLOADING,
        ItemStatus.PROCESSING,
        ItemStatus.READY,
        ItemStatus.PROBLEM,
    }
)


def _signature(secret: bytes, public_id: str, expires: int) -> str:
    mac = hmac.new(secret, TOKEN_CONTEXT + f":{public_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:24]).decode().rstrip("=")


def link_secret(settings: Settings) -> bytes:
    """The secret the speakers' link tokens are signed with."""
    return settings.secret_key.get_secret_value().encode()


def invitation_token(invitation: SpeakerInvitation, secret: bytes) -> str:
    """The token of an invitation's link (recomputed from the row and the secret)."""
    expires = int(invitation.expires_at.timestamp())
    return f"{invitation.public_id}.{expires}.{_signature(secret, invitation.public_id, expires)}"


def invite_speaker(
    db: DbSession,
    summit: Summit,
    item: Item,
    speaker_id: int,
    *,
    valid_days: int,
    email: str = "",
    created_by: int | None = None,
    now: datetime | None = None,
) -> SpeakerInvitation:
    """Invite a speaker of the summit to an item; they are added to the item if not yet on it."""
    speaker = db.get(Speaker, speaker_id)
    if speaker is None or speaker.summit_id != summit.id:
        raise NotFoundError("No such speaker in this summit.")
    if item.summit_id != summit.id:
        raise NotFoundError("No such item in this summit.")
    if item.kind not in (ItemKind.SPEECH, ItemKind.VIDEO, ItemKind.LIVE):
        raise ValidationError(f"A {item.kind} item has no speaker to invite.", field="item")
    email = email.strip()
    if email and ("@" not in email or len(email) > 254 or any(c.isspace() for c in email)):
        raise ValidationError(f"{email!r} is not an e-mail address.", field="email")
    if not 1 <= valid_days <= 366:
        raise ValidationError("A link is valid for 1 to 366 days.", field="valid_days")
    if speaker.id not in {link.speaker_id for link in item.speaker_links}:
        item.speaker_links.append(
            ItemSpeaker(speaker_id=speaker.id, position=len(item.speaker_links))
        )
    moment = now or utcnow()
    invitation = SpeakerInvitation(
        summit_id=summit.id,
        item_id=item.id,
        speaker_id=speaker.id,
        public_id=secrets.token_urlsafe(12),
        email=email,
        created_by=created_by,
        # Whole seconds: the token carries the expiry as an integer timestamp.
        expires_at=(moment + timedelta(days=valid_days)).replace(microsecond=0),
    )
    db.add(invitation)
    if item.status == ItemStatus.PLANNED and item.kind != ItemKind.LIVE:
        item.status = ItemStatus.MISSING.value
    db.flush()
    return invitation


# How stale "opened at" may get before opening a link writes it again.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def open_invitation(
    db: DbSession, token: str, secret: bytes, *, now: datetime | None = None
) -> SpeakerInvitation:
    """The invitation a link's token opens; refuse a forged, expired or revoked one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(token) > 200:
        raise NotFoundError(INVALID_LINK)
    public_id, expires_text, signature = parts
    expected = _signature(secret, public_id, int(expires_text))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise NotFoundError(INVALID_LINK)
    moment = now or utcnow()
    if int(expires_text) <= moment.timestamp():
        raise PermissionDeniedError(
            "This link has expired. Ask the organisers to send you a new one."
        )
    invitation = db.scalar(
        select(SpeakerInvitation).where(SpeakerInvitation.public_id == public_id)
    )
    if invitation is None or int(invitation.expires_at.timestamp()) != int(expires_text):
        raise NotFoundError(INVALID_LINK)
    if invitation.revoked_at is not None:
        raise PermissionDeniedError(
            "This link was withdrawn by the organisers. Ask them for a new one if you need it."
        )
    last = invitation.last_used_at
    if last is None or moment - last >= LAST_USED_RESOLUTION:
        # Shown to organisers to the minute; a row write for every upload chunk (128 per
        # GiB) would only slow the upload down.
        invitation.last_used_at = moment
    return invitation


def get_invitation(db: DbSession, summit: Summit, invitation_id: int) -> SpeakerInvitation:
    """One invitation of the summit, or 404."""
    invitation = db.get(SpeakerInvitation, invitation_id)
    if invitation is None or invitation.summit_id != summit.id:
        raise NotFoundError("No such invitation.")
    return invitation


def revoke_invitation(
    db: DbSession, invitation: SpeakerInvitation, *, now: datetime | None = None
) -> None:
    """Withdraw a link; the portal refuses it from now on."""
    if invitation.revoked_at is None:
        invitation.revoked_at = now or utcnow()


def invitations_of_item(db: DbSession, item: Item) -> list[SpeakerInvitation]:
    """Every invitation to an item, newest first."""
    return list(
        db.scalars(
            select(SpeakerInvitation)
            .where(SpeakerInvitation.item_id == item.id)
            .order_by(SpeakerInvitation.created_at.desc(), SpeakerInvitation.id.desc())
        )
    )


def uploads_of_item(db: DbSession, item_id: int) -> list[Upload]:
    """Every upload to an item, newest first."""
    return list(
        db.scalars(
            select(Upload)
            .where(Upload.item_id == item_id)
            .order_by(Upload.created_at.desc(), Upload.id.desc())
        )
    )


@dataclass(frozen=True, slots=True)
class Readiness:
    """One item's speaker side as the organisers review it: links, files, their jobs."""

    item: Item
    invitations: list[tuple[SpeakerInvitation, str]]  # each with its link
    uploads: list[Upload]
    senders: dict[int, str]  # invitation id: its speaker's name (co-speakers each send)
    jobs: dict[int, list[Job]]  # upload id: its check and normalisation jobs


def readiness(
    db: DbSession, summit: Summit, item_id: int, *, secret: bytes, base_url: str
) -> Readiness:
    """The invitations, uploads and upload jobs of one item of the summit."""
    item = get_item(db, summit, item_id)
    invitations = [
        (inv, f"{base_url.rstrip('/')}/speak/{invitation_token(inv, secret)}")
        for inv in invitations_of_item(db, item)
    ]
    item_uploads = uploads_of_item(db, item.id)
    return Readiness(
        item=item,
        invitations=invitations,
        uploads=item_uploads,
        senders={inv.id: inv.speaker.name for inv, _link in invitations},
        jobs={u.id: jobs.jobs_of_upload(db, u.id) for u in item_uploads},
    )


def speaker_uploads(invitation: SpeakerInvitation) -> Select[Upload]:
    """A query of the uploads the link's speaker made to its item, through any of their links."""
    # An upload belongs to the speaker of the link that created it: a co-speaker of the
    # same item neither sees nor touches it (the organisers see all). A re-issued link
    # (same speaker, same item) still reaches the uploads its earlier links started.
    return (
        select(Upload)
        .join(SpeakerInvitation, SpeakerInvitation.id == Upload.invitation_id)
        .where(
            Upload.item_id == invitation.item_id,
            SpeakerInvitation.speaker_id == invitation.speaker_id,
        )
    )


@dataclass(frozen=True, slots=True)
class Portal:
    """What a speaker's portal shows."""

    invitation: SpeakerInvitation
    speaker: Speaker
    item: Item
    summit: Summit
    slot: TimedItem | None
    duration_limit_s: int
    uploads: tuple[Upload, ...]
    notices: tuple[Notice, ...]
    can_upload: bool
    # The newest upload that is not final: the page offers to resume it.
    pending: Upload | None
    ready: Upload | None


def portal(db: DbSession, invitation: SpeakerInvitation) -> Portal:
    """Everything the speaker's portal shows, read in one go."""
    item = invitation.item
    slot = next((t for i, t in timed_items(item.session) if i.id == item.id), None)
    newest_first = speaker_uploads(invitation).order_by(Upload.created_at.desc(), Upload.id.desc())
    uploads = list(db.scalars(newest_first))
    pending = next(
        (
            u
            for u in uploads
            if UploadState(u.state) not in FINAL_STATES and u.state != UploadState.REPLACED
        ),
        None,
    )
    ready = next(
        (u for u in uploads if u.state == UploadState.READY and u.kind == "programme"), None
    )
    return Portal(
        invitation=invitation,
        speaker=invitation.speaker,
        item=item,
        summit=item.session.summit,
        slot=slot,
        duration_limit_s=item.planned_duration_s,
        uploads=tuple(uploads),
        notices=tuple(notifications.notices_for(db, invitation.speaker_id, item.id)),
        can_upload=ItemStatus(item.status) in UPLOAD_OPEN,
        pending=pending,
        ready=ready,
    )


def approve_item(
    db: DbSession, item: Item, *, email: bool = False, actor: Actor | None = None
) -> None:
    """Approve a ready item for air; the speaker is told (audit-logged)."""
    if item.status != ItemStatus.READY:
        raise ConflictError(
            f"Only a ready item can be approved; this one is {item.status}.", field="status"
        )
    item.status = ItemStatus.APPROVED.value
    record_event(db, item.session.summit, actor, "item.approved", f"item:{item.id}")
    for link in item.speaker_links:
        notifications.notify(
            db,
            speaker_id=link.speaker_id,
            item_id=item.id,
            level=notifications.NoticeLevel.DONE,
            message="The organisers approved your video. Thank you: nothing more to do.",
            email=email,
        )


def ask_new_take(
    db: DbSession, item: Item, reason: str, *, email: bool = False, actor: Actor | None = None
) -> None:
    """Send the item back to 'missing' and tell the speaker why (audit-logged, not the reason)."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Tell the speaker what to change.", field="reason")
    if len(reason) > 2000:
        raise ValidationError("Keep the reason under 2,000 characters.", field="reason")
    if item.status in (ItemStatus.ON_AIR, ItemStatus.DONE):
        raise ConflictError("This item has already been on air.", field="status")
    item.status = ItemStatus.MISSING.value
    # The reason is the organisers' message to the speaker, not part of the trail.
    record_event(db, item.session.summit, actor, "item.retake_requested", f"item:{item.id}")
    for upload in uploads_of_item(db, item.id):
        if upload.state == UploadState.READY and upload.kind == "programme":
            upload.state = UploadState.REPLACED.value
    for link in item.speaker_links:
        notifications.notify(
            db,
            speaker_id=link.speaker_id,
            item_id=item.id,
            level=notifications.NoticeLevel.PROBLEM,
            message=f"The organisers ask you for a new recording: {reason}",
            email=email,
        )


# --- the organisers' list -----------------------------------------------------------------

SPEAKER_SORTS: dict[str, str] = {
    "name": "name",
    "newest": "newest first",
    "country": "country, then name",
}


@dataclass(frozen=True, slots=True)
class SpeakerPage:
    """One page of a summit's speakers and how many the summit has."""

    rows: list[Speaker]
    page: paging.Page  # page.total: the speakers the text matches
    summit_total: int


def page_of_speakers(
    db: DbSession,
    summit: Summit,
    *,
    text: str = "",
    sort: str = "name",
    page: int = 1,
    size: int = paging.DEFAULT_PAGE_SIZE,
) -> SpeakerPage:
    """A page of the summit's speakers whose name or role line holds ``text``."""
    if sort not in SPEAKER_SORTS:
        raise ValidationError(f"{sort!r} is not a way to sort speakers.", field="sort")
    text = paging.search_text(text)
    everyone = Speaker.summit_id == summit.id
    where = [everyone]
    if text:
        where.append(
            or_(
                Speaker.name.icontains(text, autoescape=True),
                Speaker.role_line.icontains(text, autoescape=True),
            )
        )
    summit_total = int(db.scalar(select(func.count()).where(everyone)) or 0)
    total = (
        int(db.scalar(select(func.count()).select_from(Speaker).where(*where)) or 0)
        if text
        else summit_total
    )
    shown = paging.Page.of(page, size, total)
    orders: dict[str, list[ColumnElement[Any]]] = {
        "name": [func.lower(Speaker.name), Speaker.id.asc()],
        "newest": [Speaker.id.desc()],  # speakers have no creation time; ids follow insertion
        "country": [Speaker.country.asc(), func.lower(Speaker.name), Speaker.id.asc()],
    }
    rows = db.scalars(
        select(Speaker).where(*where).order_by(*orders[sort]).limit(shown.size).offset(shown.offset)
    )
    return SpeakerPage(list(rows), shown, summit_total)
