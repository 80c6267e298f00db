"""Programme use cases: summits, sessions, items of the run of show, speakers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pycountry
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload

from summitcast.domain import programme as rules
from summitcast.domain.accounts import Role
from summitcast.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from summitcast.services import accounts, photos
from summitcast.storage.tables import Day, Item, ItemSpeaker, Session, Speaker, Summit, User


@dataclass(frozen=True, slots=True, kw_only=True)
class SummitInput:
    """What an organiser fills in for a summit."""

    slug: str
    title: str
    time_zone: str
    start_date: date
    end_date: date
    languages: tuple[str, ...] = ("en",)
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInput:
    """What an organiser fills in for a session (times are aware)."""

    title: str
    planned_start: datetime
    planned_end: datetime
    room: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemInput:
    """What an organiser fills in for an item of the run of show."""

    title: str
    kind: rules.ItemKind = rules.ItemKind.SPEECH
    planned_duration_s: int = 0
    subtitle: str = ""
    description: str = ""
    language: str = ""
    status: rules.ItemStatus = rules.ItemStatus.PLANNED


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakerInput:
    """What an organiser fills in for a speaker."""

    name: str
    role_line: str = ""
    country: str = ""
    bio: str = ""
    language: str = ""


def _text(value: str, field: str, *, limit: int, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationError(f"{field.replace('_', ' ').capitalize()} is required.", field=field)
    if len(cleaned) > limit:
        raise ValidationError(f"{field} may have at most {limit} characters.", field=field)
    return cleaned


def validate_country(code: str) -> str:
    """Return an ISO 3166-1 alpha-2 code in capitals, or '' when none is given."""
    value = code.strip().upper()
    if not value:
        return ""
    if pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError(
            f"{code!r} is not an ISO 3166 country code (two letters, such as 'KE' or 'BR').",
            field="country",
        )
    return value


def _check_summit(data: SummitInput) -> None:
    rules.validate_slug(data.slug)
    _text(data.title, "title", limit=300)
    rules.validate_time_zone(data.time_zone)
    rules.validate_summit_dates(data.start_date, data.end_date)
    rules.validate_languages(data.languages)
    _text(data.description, "description", limit=20_000, required=False)


def create_summit(db: DbSession, data: SummitInput, *, creator: User | None = None) -> Summit:
    """Create a summit; its creator becomes its organiser."""
    _check_summit(data)
    if db.scalar(select(Summit.id).where(Summit.slug == data.slug)) is not None:
        raise ConflictError(f"The slug {data.slug!r} is taken.", field="slug")
    summit = Summit(
        slug=data.slug,
        title=data.title.strip(),
        description=data.description.strip(),
        time_zone=data.time_zone,
        start_date=data.start_date,
        end_date=data.end_date,
        languages=list(rules.validate_languages(data.languages)),
    )
    db.add(summit)
    db.flush()
    if creator is not None:
        from summitcast.services.accounts import grant_role

        grant_role(db, user=creator, summit=summit, role=Role.ORGANISER)
    return summit


def create_summit_as(db: DbSession, actor: accounts.Actor, data: SummitInput) -> Summit:
    """Create a summit for this caller, who organises it (admins and organisers only)."""
    if not accounts.can_create_summits(db, actor):
        raise PermissionDeniedError("Only organisers may create summits.")
    return create_summit(db, data, creator=accounts.get_user(db, actor.user_id))


def update_summit(db: DbSession, summit: Summit, data: SummitInput) -> Summit:
    """Change a summit's fields; sessions outside the new dates are refused."""
    _check_summit(data)
    if data.slug != summit.slug and db.scalar(select(Summit.id).where(Summit.slug == data.slug)):
        raise ConflictError(f"The slug {data.slug!r} is taken.", field="slug")
    zone = rules.validate_time_zone(data.time_zone)
    for session in summit.sessions:
        day = rules.local_day(session.planned_start, zone)
        if not data.start_date <= day <= data.end_date:
            raise ValidationError(
                f"Session {session.title!r} falls on {day}, outside the new dates.",
                field="start_date",
            )
    summit.slug = data.slug
    summit.title = data.title.strip()
    summit.description = data.description.strip()
    summit.time_zone = data.time_zone
    summit.start_date = data.start_date
    summit.end_date = data.end_date
    summit.languages = list(rules.validate_languages(data.languages))
    db.flush()
    return summit


def get_summit(db: DbSession, slug: str) -> Summit:
    """Load a summit by slug."""
    summit = db.scalar(select(Summit).where(Summit.slug == slug))
    if summit is None:
        raise NotFoundError(f"There is no summit {slug!r}.")
    return summit


def summit_by_id(db: DbSession, summit_id: int) -> Summit | None:
    """The summit with this id, or None if there is none (any more)."""
    return db.get(Summit, summit_id)


def list_summits(db: DbSession) -> list[Summit]:
    """Every summit, soonest first."""
    return list(db.scalars(select(Summit).order_by(Summit.start_date, Summit.id)))


def ensure_day(db: DbSession, summit: Summit, day: date) -> Day:
    """The summit's Day row for a date, created on first use."""
    found = db.scalar(select(Day).where(Day.summit_id == summit.id, Day.date == day))
    if found is not None:
        return found
    created = Day(summit_id=summit.id, date=day, label="")
    db.add(created)
    db.flush()
    return created


def _check_session(summit: Summit, data: SessionInput) -> date:
    _text(data.title, "title", limit=300)
    _text(data.room, "room", limit=200, required=False)
    rules.validate_window(data.planned_start, data.planned_end)
    day = rules.local_day(data.planned_start, rules.validate_time_zone(summit.time_zone))
    if not summit.start_date <= day <= summit.end_date:
        raise ValidationError(
            f"The session starts on {day}, outside the summit "
            f"({summit.start_date} to {summit.end_date}).",
            field="planned_start",
        )
    return day


def add_session(db: DbSession, summit: Summit, data: SessionInput, *, key: str = "") -> Session:
    """Add a session to a summit on the day it starts (summit time zone)."""
    day = _check_session(summit, data)
    session = Session(
        summit_id=summit.id,
        day_id=ensure_day(db, summit, day).id,
        key=key or str(uuid.uuid4()),
        title=data.title.strip(),
        room=data.room.strip(),
        planned_start=data.planned_start,
        planned_end=data.planned_end,
    )
    db.add(session)
    db.flush()
    return session


def update_session(db: DbSession, session: Session, data: SessionInput) -> Session:
    """Change a session's title and window."""
    day = _check_session(session.summit, data)
    session.title = data.title.strip()
    session.room = data.room.strip()
    session.planned_start = data.planned_start
    session.planned_end = data.planned_end
    session.day_id = ensure_day(db, session.summit, day).id
    db.flush()
    return session


def get_session(db: DbSession, summit: Summit, session_id: int) -> Session:
    """Load a session of this summit (never another summit's)."""
    session = db.scalar(
        select(Session)
        .where(Session.id == session_id, Session.summit_id == summit.id)
        .options(selectinload(Session.items).selectinload(Item.speaker_links))
    )
    if session is None:
        raise NotFoundError("There is no such session in this summit.")
    return session


def delete_session(db: DbSession, session: Session) -> None:
    """Remove a session and its run of show."""
    db.delete(session)
    db.flush()


def session_warnings(summit: Summit) -> dict[int, list[str]]:
    """Per session: overlaps with other sessions and over- or under-runs of its items."""
    warnings: dict[int, list[str]] = {s.id: [] for s in summit.sessions}
    windows = [rules.Window(s.id, s.title, s.planned_start, s.planned_end) for s in summit.sessions]
    for first, second in rules.overlaps(windows):
        warnings[first.key].append(f"Overlaps {second.title!r}: one broadcast cannot air both.")
        warnings[second.key].append(f"Overlaps {first.title!r}: one broadcast cannot air both.")
    for s in summit.sessions:
        timing = rules.session_timing(
            s.planned_start, s.planned_end, [i.planned_duration_s for i in s.items]
        )
        if timing.overrun_seconds:
            warnings[s.id].append(
                f"Items run {rules.format_duration(timing.overrun_seconds)} past the planned end."
            )
    return warnings


def _check_item(data: ItemInput) -> None:
    _text(data.title, "title", limit=500)
    _text(data.subtitle, "subtitle", limit=500, required=False)
    _text(data.description, "description", limit=50_000, required=False)
    rules.validate_duration(data.planned_duration_s)
    if data.language:
        rules.validate_languages([data.language])


def add_item(db: DbSession, session: Session, data: ItemInput, *, guid: str = "") -> Item:
    """Append an item to the end of a session's run of show."""
    _check_item(data)
    last = db.scalar(select(func.max(Item.position)).where(Item.session_id == session.id))
    item = Item(
        summit_id=session.summit_id,
        session_id=session.id,
        guid=guid or str(uuid.uuid4()),
        position=(last + 1) if last is not None else 0,
        kind=data.kind.value,
        status=data.status.value,
        title=data.title.strip(),
        subtitle=data.subtitle.strip(),
        description=data.description.strip(),
        language=data.language,
        planned_duration_s=data.planned_duration_s,
    )
    db.add(item)
    db.flush()
    db.refresh(session)
    return item


def update_item(db: DbSession, item: Item, data: ItemInput) -> Item:
    """Change an item's fields."""
    _check_item(data)
    item.title = data.title.strip()
    item.kind = data.kind.value
    item.status = data.status.value
    item.subtitle = data.subtitle.strip()
    item.description = data.description.strip()
    item.language = data.language
    item.planned_duration_s = data.planned_duration_s
    db.flush()
    return item


def get_item(db: DbSession, summit: Summit, item_id: int) -> Item:
    """Load an item of this summit (never another summit's)."""
    item = db.scalar(select(Item).where(Item.id == item_id, Item.summit_id == summit.id))
    if item is None:
        raise NotFoundError("There is no such item in this summit.")
    return item


def delete_item(db: DbSession, item: Item) -> None:
    """Remove an item and close the gap in positions."""
    session = item.session
    db.delete(item)
    db.flush()
    db.refresh(session)
    _renumber(session.items)
    db.flush()


def _renumber(items: list[Item]) -> None:
    for position, item in enumerate(items):
        item.position = position


def move_item(db: DbSession, item: Item, new_index: int) -> list[Item]:
    """Move one item to a new place in its session's run of show."""
    session = item.session
    order = rules.reorder([i.id for i in session.items], item.id, new_index)
    return set_order(db, session, order)


def move_item_by(db: DbSession, item: Item, step: int) -> list[Item]:
    """Move one item `step` places later in its run of show (earlier if negative)."""
    index = [i.id for i in item.session.items].index(item.id)
    return move_item(db, item, index + step)


def set_order(db: DbSession, session: Session, order: list[int]) -> list[Item]:
    """Put the session's items in exactly this order of ids."""
    by_id = {i.id: i for i in session.items}
    rules.check_full_order(list(by_id), order)
    ordered = [by_id[i] for i in order]
    _renumber(ordered)
    db.flush()
    db.refresh(session)
    return list(session.items)


def _check_speaker(data: SpeakerInput) -> str:
    _text(data.name, "name", limit=300)
    _text(data.role_line, "role_line", limit=300, required=False)
    _text(data.bio, "bio", limit=5_000, required=False)
    if data.language:
        rules.validate_languages([data.language])
    return validate_country(data.country)


def add_speaker(db: DbSession, summit: Summit, data: SpeakerInput, *, guid: str = "") -> Speaker:
    """Add a speaker to a summit."""
    country = _check_speaker(data)
    speaker = Speaker(
        summit_id=summit.id,
        guid=guid or str(uuid.uuid4()),
        name=data.name.strip(),
        role_line=data.role_line.strip(),
        country=country,
        bio=data.bio.strip(),
        language=data.language,
    )
    db.add(speaker)
    try:
        db.flush()
    except IntegrityError as exc:
        raise ConflictError("A speaker with this identifier exists already.") from exc
    return speaker


def update_speaker(db: DbSession, speaker: Speaker, data: SpeakerInput) -> Speaker:
    """Change a speaker's fields."""
    speaker.country = _check_speaker(data)
    speaker.name = data.name.strip()
    speaker.role_line = data.role_line.strip()
    speaker.bio = data.bio.strip()
    speaker.language = data.language
    db.flush()
    return speaker


def get_speaker(db: DbSession, summit: Summit, speaker_id: int) -> Speaker:
    """Load a speaker of this summit (never another summit's)."""
    speaker = db.scalar(
        select(Speaker).where(Speaker.id == speaker_id, Speaker.summit_id == summit.id)
    )
    if speaker is None:
        raise NotFoundError("There is no such speaker in this summit.")
    return speaker


def delete_speaker(db: DbSession, speaker: Speaker) -> None:
    """Remove a speaker from the summit and from every item."""
    db.delete(speaker)
    db.flush()


def set_item_speakers(db: DbSession, item: Item, speaker_ids: list[int]) -> Item:
    """Set who speaks in an item, in order; every speaker must belong to the same summit."""
    if len(set(speaker_ids)) != len(speaker_ids):
        raise ValidationError("A speaker is listed twice.", field="speakers")
    found = set(
        db.scalars(
            select(Speaker.id).where(
                Speaker.id.in_(speaker_ids), Speaker.summit_id == item.summit_id
            )
        )
    )
    missing = [s for s in speaker_ids if s not in found]
    if missing:
        raise ValidationError(f"No speaker {missing[0]} in this summit.", field="speakers")
    item.speaker_links.clear()
    db.flush()
    for position, speaker_id in enumerate(speaker_ids):
        item.speaker_links.append(ItemSpeaker(speaker_id=speaker_id, position=position))
    db.flush()
    return item


def programme_of(db: DbSession, summit: Summit) -> list[Session]:
    """Sessions of a summit with their items and speakers loaded, in time order."""
    return list(
        db.scalars(
            select(Session)
            .where(Session.summit_id == summit.id)
            .order_by(Session.planned_start, Session.id)
            .options(
                selectinload(Session.items)
                .selectinload(Item.speaker_links)
                .selectinload(ItemSpeaker.speaker)
            )
        )
    )


def items_of_speaker(db: DbSession, speaker: Speaker) -> list[Item]:
    """Items a speaker appears in, in programme order."""
    return list(
        db.scalars(
            select(Item)
            .join(ItemSpeaker, ItemSpeaker.item_id == Item.id)
            .join(Session, Session.id == Item.session_id)
            .where(ItemSpeaker.speaker_id == speaker.id)
            .order_by(Session.planned_start, Item.position)
        )
    )


def timed_items(session: Session) -> list[tuple[Item, rules.TimedItem]]:
    """A session's items with their planned start and end, laid end to end."""
    laid = rules.lay_out(
        session.planned_start, [(i.id, i.planned_duration_s) for i in session.items]
    )
    return list(zip(session.items, laid, strict=True))


def set_speaker_photo(db: DbSession, speaker: Speaker, name: str, *, folder: Path) -> Speaker:
    """Point the speaker at a stored photo and delete the one it replaces."""
    old = speaker.photo
    speaker.photo = name
    db.flush()
    if old and old != name:
        (folder / Path(old).name).unlink(missing_ok=True)
    return speaker


def replace_speaker_photo(
    db: DbSession, speaker: Speaker, data: bytes, *, folder: Path, max_bytes: int
) -> Speaker:
    """Store a sanitised copy of an uploaded photo as the speaker's (the old one goes)."""
    name = photos.store_photo(folder, data, max_bytes=max_bytes)
    return set_speaker_photo(db, speaker, name, folder=folder)


def save_item(db: DbSession, item: Item, data: ItemInput, speaker_ids: list[int]) -> Item:
    """Save an item's fields and who speaks in it."""
    update_item(db, item, data)
    return set_item_speakers(db, item, speaker_ids)
