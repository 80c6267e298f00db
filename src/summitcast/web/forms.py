"""Form fields from the browser turned into typed service inputs, with errors a person can act on.

Each `*_form` function is a FastAPI dependency: a handler asks for `SessionForm` and gets a
validated `SessionInput`, so the list of form fields lives here once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Depends, Form

from summitcast.domain import programme as rules
from summitcast.domain.locations import FIELD_NAMES, MAX_AUDIENCE, LocationInput
from summitcast.errors import ValidationError
from summitcast.services.programme import ItemInput, SessionInput, SpeakerInput, SummitInput
from summitcast.web.deps import EditableSummit

Text = Annotated[str, Form(max_length=20_000)]
ShortText = Annotated[str, Form(max_length=500)]


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


def summit_form(
    # Aliased: the summit's page already has a `slug` path parameter (the old slug).
    new_slug: Annotated[str, Form(alias="slug", max_length=64)],
    title: ShortText,
    time_zone: ShortText,
    start_date: ShortText,
    end_date: ShortText,
    languages: ShortText = "en",
    description: Text = "",
) -> SummitInput:
    """A summit from its form fields (languages comma- or space-separated)."""
    return SummitInput(
        slug=new_slug.strip(),
        title=title,
        time_zone=time_zone.strip(),
        start_date=parse_date(start_date, "start_date"),
        end_date=parse_date(end_date, "end_date"),
        languages=tuple(languages.replace(",", " ").split()),
        description=description,
    )


def session_form(
    summit: EditableSummit,
    title: ShortText,
    planned_start: ShortText,
    planned_end: ShortText,
    room: ShortText = "",
) -> SessionInput:
    """A session from its form fields, times read in the summit's zone."""
    return SessionInput(
        title=title,
        planned_start=parse_local_datetime(planned_start, summit.time_zone, "planned_start"),
        planned_end=parse_local_datetime(planned_end, summit.time_zone, "planned_end"),
        room=room,
    )


def item_form(
    title: ShortText,
    kind: ShortText = "speech",
    duration: ShortText = "0",
    subtitle: ShortText = "",
    description: Text = "",
    language: ShortText = "",
    status: ShortText = "planned",
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


def speaker_form(
    name: ShortText,
    role_line: ShortText = "",
    country: ShortText = "",
    bio: Text = "",
    language: ShortText = "",
) -> SpeakerInput:
    """A speaker from its form fields."""
    return SpeakerInput(
        name=name, role_line=role_line, country=country, bio=bio, language=language.strip()
    )


def location_input(values: dict[str, str]) -> LocationInput:
    """A watch location from the registration form's fields (see FIELD_NAMES for their names)."""
    for field, value in values.items():
        # No person types these, and PostgreSQL cannot store NUL: a message, not a 500.
        if any(not (c.isprintable() or c.isspace()) for c in value):
            raise ValidationError(
                f"{FIELD_NAMES.get(field, field)} holds a character that cannot be kept; "
                "type it again without control characters.",
                field=field,
            )
    audience = values.get("expected_audience", "").strip() or "1"
    if not audience.isdecimal() or not 1 <= int(audience) <= MAX_AUDIENCE:
        raise ValidationError(
            f"{FIELD_NAMES['expected_audience']} must be a whole number of people "
            f"from 1 to {MAX_AUDIENCE:,}.",
            field="expected_audience",
        )
    return LocationInput(
        label=values.get("label", ""),
        country=values.get("country", ""),
        city=values.get("city", ""),
        kind=values.get("kind", "") or "other",
        expected_audience=int(audience),
        contact=values.get("contact", ""),
        privacy_level=values.get("privacy_level", ""),
    )


SummitForm = Annotated[SummitInput, Depends(summit_form)]
SessionForm = Annotated[SessionInput, Depends(session_form)]
ItemForm = Annotated[ItemInput, Depends(item_form)]
SpeakerForm = Annotated[SpeakerInput, Depends(speaker_form)]
