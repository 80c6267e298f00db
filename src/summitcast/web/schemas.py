"""Pydantic shapes of the JSON API: what comes in and what goes out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.web.edge import MAX_ROW_ID

# Rows are numbered in INTEGER columns (32-bit on PostgreSQL): a larger id names nothing,
# and is refused with the field's name before it reaches SQL (the bound of the edge's ids).
BodyRowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class SummitIn(BaseModel):
    """A summit to create or replace."""

    slug: str = Field(min_length=3, max_length=64, examples=["world-summit-2027"])
    title: str = Field(min_length=1, max_length=300)
    time_zone: str = Field(examples=["Europe/Paris"])
    start_date: date
    end_date: date
    languages: list[str] = Field(default=["en"], max_length=50)
    description: str = Field(default="", max_length=20_000)


class SummitOut(BaseModel):
    """A summit as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    title: str
    time_zone: str
    start_date: date
    end_date: date
    languages: list[str]
    description: str


class SessionIn(BaseModel):
    """A session to create or replace; times must carry an offset."""

    title: str = Field(min_length=1, max_length=300)
    planned_start: AwareDatetime
    planned_end: AwareDatetime
    room: str = Field(default="", max_length=200)


class SpeakerRef(BaseModel):
    """A speaker named in an item."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str


class ItemIn(BaseModel):
    """An item of the run of show to create or replace."""

    title: str = Field(min_length=1, max_length=500)
    kind: ItemKind = ItemKind.SPEECH
    planned_duration_s: int = Field(default=0, ge=0, le=24 * 3600)
    subtitle: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=50_000)
    language: str = Field(default="", max_length=16)
    status: ItemStatus = ItemStatus.PLANNED


class ItemOut(BaseModel):
    """An item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    guid: str
    session_id: int
    position: int
    kind: str
    status: str
    title: str
    subtitle: str
    description: str
    language: str
    planned_duration_s: int
    speakers: list[SpeakerRef] = []


class SessionOut(BaseModel):
    """A session with its run of show."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    title: str
    room: str
    planned_start: datetime
    planned_end: datetime
    items: list[ItemOut] = []


class SpeakerIn(BaseModel):
    """A speaker to create or replace."""

    name: str = Field(min_length=1, max_length=300)
    role_line: str = Field(default="", max_length=300)
    country: str = Field(default="", max_length=2, examples=["KE"])
    bio: str = Field(default="", max_length=5_000)
    language: str = Field(default="", max_length=16)


class SpeakerOut(BaseModel):
    """A speaker as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    guid: str
    name: str
    role_line: str
    country: str
    bio: str
    language: str
    photo_url: str | None = None


class OrderIn(BaseModel):
    """Every item id of a session, in the new order."""

    order: list[BodyRowId] = Field(max_length=10_000)


class SpeakersIn(BaseModel):
    """Speaker ids of an item, in billing order."""

    speakers: list[BodyRowId] = Field(max_length=100)


class ErrorOut(BaseModel):
    """Why a request was refused: a sentence, or one line per invalid field."""

    detail: str | list[str]
    field: str | None = None


class ImportOut(BaseModel):
    """What an import changed."""

    days: int
    sessions: int
    items: int
    speakers: int
    created: int
    updated: int
    unchanged: int
