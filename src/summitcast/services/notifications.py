"""Notices to speakers: always in their portal, by e-mail only when an SMTP server is configured.

No third-party mail service is assumed: ``send_email`` speaks SMTP to the server named
in ``SUMMITCAST_SMTP_HOST`` and nothing else. Sending runs as a job, so a slow or
failing mail server never holds up a request and failures are retried and visible.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.services import jobs
from summitcast.storage.tables import Notice, SpeakerInvitation, utcnow

JOB_KIND_EMAIL = "email_notice"


class NoticeLevel(StrEnum):
    """How a notice looks in the portal."""

    INFO = "info"
    PROBLEM = "problem"
    DONE = "done"


def notify(
    db: DbSession,
    *,
    speaker_id: int,
    item_id: int | None,
    level: NoticeLevel,
    message: str,
    email: bool = False,
) -> Notice:
    """Store a notice for the speaker's portal; with email=True also queue an e-mail job."""
    notice = Notice(speaker_id=speaker_id, item_id=item_id, level=level.value, message=message)
    db.add(notice)
    db.flush()
    if email:
        jobs.enqueue(db, JOB_KIND_EMAIL, payload={"notice_id": notice.id}, max_attempts=5)
    return notice


def notices_for(db: DbSession, speaker_id: int, item_id: int | None) -> list[Notice]:
    """A speaker's notices about one item (and general ones), newest first."""
    return list(
        db.scalars(
            select(Notice)
            .where(
                Notice.speaker_id == speaker_id,
                or_(Notice.item_id == item_id, Notice.item_id.is_(None)),
            )
            .order_by(Notice.created_at.desc(), Notice.id.desc())
            .limit(50)
        )
    )


def email_configured(settings: Settings) -> bool:
    """True when an SMTP server and a sender address are configured."""
    return bool(settings.smtp_host and settings.smtp_from)


def recipient_of(db: DbSession, notice: Notice) -> str:
    """The e-mail address of the newest live invitation of the notice's speaker, or ''."""
    query = select(SpeakerInvitation.email).where(
        SpeakerInvitation.speaker_id == notice.speaker_id,
        SpeakerInvitation.revoked_at.is_(None),
        SpeakerInvitation.email != "",
    )
    if notice.item_id is not None:
        query = query.where(SpeakerInvitation.item_id == notice.item_id)
    return db.scalar(query.order_by(SpeakerInvitation.id.desc()).limit(1)) or ""


def build_email(settings: Settings, notice: Notice, to: str) -> EmailMessage:
    """The e-mail carrying one notice (no link: the speaker already has theirs)."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = "summitcast: news about your speech"
    message.set_content(
        f"{notice.message}\n\nOpen your personal speaker link to see the details.\n"
    )
    return message


def send_email(db: DbSession, settings: Settings, notice_id: int) -> bool:
    """E-mail one notice if SMTP is configured and the speaker gave an address; True if sent."""
    notice = db.get(Notice, notice_id)
    if notice is None or notice.emailed_at is not None or not email_configured(settings):
        return False
    to = recipient_of(db, notice)
    if not to:
        return False
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(build_email(settings, notice, to))
    notice.emailed_at = utcnow()
    return True
