"""Schedule interchange use cases: import a frab/pretalx schedule into a summit, export one."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import programme as rules
from summitcast.errors import ImportFormatError, NotFoundError
from summitcast.interchange.frab_json import export_frab_json
from summitcast.interchange.frab_xml import export_frab_xml
from summitcast.interchange.ical import export_ical
from summitcast.interchange.model import (
    ScheduleDocument,
    ScheduleItem,
    SchedulePerson,
    ScheduleSession,
)
from summitcast.interchange.reader import parse_schedule
from summitcast.services.programme import (
    SummitInput,
    create_summit,
    ensure_day,
    get_summit,
    programme_of,
)
from summitcast.storage.tables import Item, ItemSpeaker, Session, Speaker, Summit

GAP_NAMESPACE = uuid.UUID("6f1d2d0e-5d43-4a8e-9f0b-5b3d0c9a1e77")
# Breaks summitcast inserts for gaps between imported events; derived from times, never exported.
GAP_TYPE = "gap"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What a schedule import found in the file and what it changed in the database."""

    days: int
    sessions: int
    items: int
    speakers: int
    created: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return asdict(self)


@dataclass(slots=True)
class _Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def note(self, *, created: bool, changed: bool) -> None:
        if created:
            self.created += 1
        elif changed:
            self.updated += 1
        else:
            self.unchanged += 1


def import_bytes(
    db: DbSession, summit: Summit, data: bytes, *, filename: str = "", max_bytes: int
) -> ImportResult:
    """Parse and import a schedule file into the summit; nothing is stored if any part fails."""
    return import_document(db, summit, parse_schedule(data, filename, max_bytes=max_bytes))


def import_into_slug(
    db: DbSession, slug: str, data: bytes, *, filename: str = "", max_bytes: int
) -> tuple[Summit, ImportResult]:
    """Import into the summit with this slug, creating it from the file if it does not exist."""
    doc = parse_schedule(data, filename, max_bytes=max_bytes)
    summit = db.scalar(select(Summit).where(Summit.slug == slug))
    if summit is None:
        summit = create_summit(
            db,
            SummitInput(
                slug=rules.validate_slug(slug),
                title=doc.title or slug,
                time_zone=doc.time_zone,
                start_date=doc.start_date,
                end_date=doc.end_date,
                languages=doc.languages or ("en",),
            ),
        )
    return summit, import_document(db, summit, doc)


def import_document(db: DbSession, summit: Summit, doc: ScheduleDocument) -> ImportResult:
    """Merge a parsed schedule into a summit inside a savepoint: all or nothing, idempotent."""
    with db.begin_nested():
        tally = _Tally()
        _widen_summit(summit, doc)
        speakers = {p.key: _upsert_speaker(db, summit, p, tally) for p in doc.people}
        for session_doc in doc.sessions:
            _upsert_session(db, summit, session_doc, speakers, tally)
        db.flush()
    db.expire(summit)
    return ImportResult(
        days=len({s.day_date for s in doc.sessions}),
        sessions=len(doc.sessions),
        items=sum(len(s.items) for s in doc.sessions),
        speakers=len(doc.people),
        created=tally.created,
        updated=tally.updated,
        unchanged=tally.unchanged,
    )


def _widen_summit(summit: Summit, doc: ScheduleDocument) -> None:
    # An imported programme may run on days the summit did not list yet: grow, never shrink.
    days = [s.day_date for s in doc.sessions] + [doc.start_date, doc.end_date]
    start, end = min(days), max(days)
    if start < summit.start_date:
        summit.start_date = start
    if end > summit.end_date:
        summit.end_date = end
    missing = [lang for lang in doc.languages if lang and lang not in summit.languages]
    if missing:
        summit.languages = [*summit.languages, *missing]


def _assign(row: object, values: dict[str, object]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _upsert_speaker(
    db: DbSession, summit: Summit, person: SchedulePerson, tally: _Tally
) -> Speaker:
    speaker = db.scalar(
        select(Speaker).where(Speaker.summit_id == summit.id, Speaker.guid == person.key)
    )
    if speaker is None and person.external_id is not None:
        speaker = db.scalar(
            select(Speaker).where(
                Speaker.summit_id == summit.id, Speaker.external_id == person.external_id
            )
        )
    values: dict[str, object] = {
        "name": person.name[:300],
        "external_id": person.external_id,
        "bio": person.biography[:5000],
    }
    if person.country:
        values["country"] = person.country.upper()[:2]
    created = speaker is None
    if speaker is None:
        speaker = Speaker(summit_id=summit.id, guid=person.key, name=person.name[:300])
        db.add(speaker)
    changed = _assign(speaker, values)
    db.flush()
    tally.note(created=created, changed=changed)
    return speaker


def _with_gaps(session_doc: ScheduleSession, summit: Summit) -> list[ScheduleItem]:
    """The session's items with a break item filling every gap, so times hold end to end."""
    filled: list[ScheduleItem] = []
    cursor = session_doc.start
    for item in session_doc.items:
        gap = int((item.start - cursor).total_seconds())
        if gap > 0:
            guid = uuid.uuid5(
                GAP_NAMESPACE,
                f"{summit.slug}/{session_doc.key}/{cursor.astimezone(UTC).isoformat()}",
            )
            filled.append(
                ScheduleItem(
                    guid=str(guid),
                    external_id=None,
                    title="Break",
                    subtitle="",
                    kind="break",
                    type=GAP_TYPE,
                    start=cursor,
                    duration_s=gap,
                    language="",
                    abstract="",
                    description="",
                    track="",
                    do_not_record=True,
                    url="",
                    person_keys=(),
                )
            )
        filled.append(item)
        cursor = max(cursor, item.start + timedelta(seconds=item.duration_s))
    return filled


def _upsert_session(
    db: DbSession,
    summit: Summit,
    session_doc: ScheduleSession,
    speakers: dict[str, Speaker],
    tally: _Tally,
) -> None:
    session = db.scalar(
        select(Session).where(Session.summit_id == summit.id, Session.key == session_doc.key)
    )
    day = ensure_day(db, summit, session_doc.day_date)
    values: dict[str, object] = {
        "title": session_doc.title[:300],
        "room": session_doc.room[:200],
        "planned_start": session_doc.start,
        "planned_end": session_doc.end,
        "day_id": day.id,
    }
    created = session is None
    if session is None:
        session = Session(summit_id=summit.id, key=session_doc.key, **values)
        db.add(session)
        db.flush()
        changed = True
    else:
        changed = _assign(session, values)
    tally.note(created=created, changed=changed)
    ordered: list[Item] = []
    for item_doc in _with_gaps(session_doc, summit):
        ordered.append(_upsert_item(db, summit, session, item_doc, speakers, tally))
    others = [
        i
        for i in db.scalars(
            select(Item).where(Item.session_id == session.id).order_by(Item.position)
        )
        if i not in ordered
    ]
    for position, item in enumerate([*ordered, *others]):
        if item.position != position:
            item.position = position
    db.flush()


def _upsert_item(
    db: DbSession,
    summit: Summit,
    session: Session,
    item_doc: ScheduleItem,
    speakers: dict[str, Speaker],
    tally: _Tally,
) -> Item:
    item = db.scalar(select(Item).where(Item.summit_id == summit.id, Item.guid == item_doc.guid))
    values: dict[str, object] = {
        "session_id": session.id,
        "external_id": item_doc.external_id,
        "kind": item_doc.kind,
        "title": item_doc.title[:500] or "(untitled)",
        "subtitle": item_doc.subtitle[:500],
        "description": (
            item_doc.abstract
            + ("\n\n" if item_doc.abstract and item_doc.description else "")
            + item_doc.description
        ),
        "language": item_doc.language[:16],
        "track": item_doc.track[:200],
        "event_type": item_doc.type[:64],
        "do_not_record": item_doc.do_not_record,
        "planned_duration_s": rules.validate_duration(item_doc.duration_s),
    }
    created = item is None
    if item is None:
        item = Item(summit_id=summit.id, guid=item_doc.guid, session_id=session.id, title="")
        db.add(item)
    changed = _assign(item, values)
    db.flush()
    wanted = [speakers[k].id for k in item_doc.person_keys if k in speakers]
    wanted = list(dict.fromkeys(wanted))
    current = [link.speaker_id for link in item.speaker_links]
    if current != wanted:
        item.speaker_links.clear()
        db.flush()
        for position, speaker_id in enumerate(wanted):
            item.speaker_links.append(ItemSpeaker(speaker_id=speaker_id, position=position))
        changed = True
    tally.note(created=created, changed=changed)
    return item


def document_of(db: DbSession, summit: Summit) -> ScheduleDocument:
    """The summit's programme as a format-neutral schedule document."""
    sessions = programme_of(db, summit)
    used: dict[int, Speaker] = {}
    session_docs: list[ScheduleSession] = []
    for session in sessions:
        laid = rules.lay_out(
            session.planned_start, [(i.id, i.planned_duration_s) for i in session.items]
        )
        items: list[ScheduleItem] = []
        for item, timed in zip(session.items, laid, strict=True):
            if item.event_type == GAP_TYPE:
                continue
            for link in item.speaker_links:
                used[link.speaker.id] = link.speaker
            items.append(_schedule_item(item, timed.start))
        session_docs.append(
            ScheduleSession(
                key=session.key,
                day_date=session.day.date,
                room=session.room or session.title,
                title=session.title,
                start=session.planned_start,
                end=session.planned_end,
                items=tuple(items),
            )
        )
    people = tuple(
        SchedulePerson(
            key=s.guid,
            guid=s.guid if _is_uuid(s.guid) else None,
            external_id=s.external_id,
            name=s.name,
            biography=s.bio,
            country=s.country or None,
        )
        for s in sorted(used.values(), key=lambda s: s.id)
    )
    return ScheduleDocument(
        title=summit.title,
        acronym=summit.slug,
        time_zone=summit.time_zone,
        start_date=summit.start_date,
        end_date=summit.end_date,
        languages=tuple(summit.languages),
        sessions=tuple(session_docs),
        people=people,
        url=None,
        generator="summitcast",
    )


def _schedule_item(item: Item, start: datetime) -> ScheduleItem:
    """One programme item as a schedule event starting at start."""
    return ScheduleItem(
        guid=item.guid,
        external_id=item.external_id,
        title=item.title,
        subtitle=item.subtitle,
        kind=item.kind,
        type=item.event_type or item.kind,
        start=start,
        duration_s=item.planned_duration_s,
        language=item.language,
        abstract="",
        description=item.description,
        track=item.track,
        do_not_record=item.do_not_record,
        url="",
        person_keys=tuple(link.speaker.guid for link in item.speaker_links),
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def export_programme(
    db: DbSession, slug: str, fmt: str, *, session_id: int | None = None
) -> tuple[bytes, str]:
    """The programme of the summit named by slug as 'json', 'xml' or 'ics' (bytes, media type)."""
    return export_summit(db, get_summit(db, slug), fmt, session_id=session_id)


def export_summit(
    db: DbSession, summit: Summit, fmt: str, *, session_id: int | None = None
) -> tuple[bytes, str]:
    """Serialise the programme as 'json', 'xml' or 'ics'; returns the bytes and media type."""
    doc = document_of(db, summit)
    if fmt == "json":
        import json

        body = json.dumps(export_frab_json(doc), ensure_ascii=False, indent=1).encode()
        return body, "application/json"
    if fmt == "xml":
        return export_frab_xml(doc), "application/xml"
    if fmt == "ics":
        key = None
        if session_id is not None:
            match = [s for s in summit.sessions if s.id == session_id]
            if not match:
                raise NotFoundError("There is no such session in this summit.")
            key = match[0].key
        return export_ical(doc, session_key=key), "text/calendar"
    raise ImportFormatError(f"Unknown export format {fmt!r}: choose json, xml or ics.")
