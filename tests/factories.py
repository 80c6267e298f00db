"""Factories for the programme objects tests arrange: summit, session, item, speaker, invitation.

Each takes an open database session (the caller's unit of work) and builds through the
use cases, so what a test arranges passes the same checks as what an organiser makes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from summitcast.services import DbSession, programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Session, Speaker, SpeakerInvitation, Summit
from tests.conftest import make_summit

# The first day of the summit make_summit creates (Europe/Berlin), 10:00 UTC.
START = datetime(2027, 7, 17, 10, tzinfo=UTC)


def summit(database: Database, slug: str = "test-summit", **fields: object) -> Summit:
    """A summit of four days in Europe/Berlin (tests.conftest.make_summit)."""
    return make_summit(database, slug, **fields)


def session(
    db: DbSession,
    summit: Summit,
    *,
    title: str = "S",
    start: datetime = START,
    length: timedelta = timedelta(hours=1),
) -> Session:
    """A session of the summit, an hour from START unless told otherwise."""
    return programme.add_session(
        db,
        summit,
        programme.SessionInput(title=title, planned_start=start, planned_end=start + length),
    )


def item(
    db: DbSession, session: Session, *, title: str = "Talk", planned_duration_s: int = 0
) -> Item:
    """A speech at the end of the session's run of show."""
    return programme.add_item(
        db, session, programme.ItemInput(title=title, planned_duration_s=planned_duration_s)
    )


def speaker(db: DbSession, summit: Summit, *, name: str = "Speaker") -> Speaker:
    """A speaker of the summit."""
    return programme.add_speaker(db, summit, programme.SpeakerInput(name=name))


def invitation(
    db: DbSession,
    summit: Summit,
    *,
    item_title: str = "Talk",
    speaker_name: str = "Speaker",
    planned_duration_s: int = 0,
    valid_days: int = 1,
) -> SpeakerInvitation:
    """A new session with one item and a speaker invited to it; the invitation.

    The item and speaker are ``invitation.item`` and ``invitation.speaker``.
    """
    talk = item(db, session(db, summit), title=item_title, planned_duration_s=planned_duration_s)
    person = speaker(db, summit, name=speaker_name)
    return speakers.invite_speaker(db, summit, talk, person.id, valid_days=valid_days)
