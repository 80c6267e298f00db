"""Form fields from the browser turned into typed values, with errors a person can act on."""

from __future__ import annotations

from datetime import date, datetime

from summitcast.domain import programme as rules
from summitcast.errors import ValidationError
from summitcast.services.programme import ItemInput, SessionInput, SpeakerInput, SummitInput


def parse_date(text: str, field: str) -> date:
    """Parse YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"{text!r} is not a date (YYYY-MM-DD).", field=field) from None


def parse_local_datetime(text: str, zone_name: str, field: str) -> datetime:
    """Parse a datetime-local value ('2026-07-17T14:00') in the summit's time zone."""
    zone = rules.validate_time_zone(zone_name)
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"{text!r} is not a date and time (YYYY-MM-DDTHH:MM).", field=field
        ) from None
    return naive.replace(tzinfo=zone) if naive.tzinfo is None else naive


def summit_input(
    *,
    slug: str,
    title: str,
    time_zone: str,
    start_date: str,
    end_date: str,
    languages: str,
    description: str,
) -> SummitInput:
    """A summit from its form fields (languages comma- or space-separated)."""
    return SummitInput(
        slug=slug.strip(),
        title=title,
        time_zone=time_zone.strip(),
        start_date=parse_date(start_date, "start_date"),
        end_date=parse_date(end_date, "end_date"),
        languages=tuple(languages.replace(",", " ").split()),
        description=description,
    )


def session_input(
    *, title: str, planned_start: str, planned_end: str, room: str, zone: str
) -> SessionInput:
    """A session from its form fields, times in the summit's zone."""
    return SessionInput(
        title=title,
        planned_start=parse_local_datetime(planned_start, zone, "planned_start"),
        planned_end=parse_local_datetime(planned_end, zone, "planned_end"),
        room=room,
    )


def item_input(
    *,
    title: str,
    kind: str,
    duration: str,
    subtitle: str,
    description: str,
    language: str,
    status: str,
) -> ItemInput:
    """An item from its form fields; duration as minutes, MM:SS or HH:MM:SS."""
    try:
        item_kind = rules.ItemKind(kind)
    except ValueError:
        raise ValidationError(f"{kind!r} is not a kind of item.", field="kind") from None
    try:
        item_status = rules.ItemStatus(status)
    except ValueError:
        raise ValidationError(f"{status!r} is not a status.", field="status") from None
    return ItemInput(
        title=title,
        kind=item_kind,
        planned_duration_s=rules.parse_duration(duration or "0"),
        subtitle=subtitle,
        description=description,
        language=language.strip(),
        status=item_status,
    )


def speaker_input(
    *, name: str, role_line: str, country: str, bio: str, language: str
) -> SpeakerInput:
    """A speaker from its form fields."""
    return SpeakerInput(
        name=name, role_line=role_line, country=country, bio=bio, language=language.strip()
    )
