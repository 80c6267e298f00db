"""The organisers' list of a summit's uploads: a page at a time, by state, file, item or speaker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import paging
from summitcast.domain.uploads import UploadState
from summitcast.errors import ValidationError
from summitcast.storage.tables import Item, Speaker, SpeakerInvitation, Summit, Upload

UPLOAD_SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first",
    "name": "file name",
    "size": "largest first",
}


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload as the organisers' list shows it: with its item and speaker."""

    upload: Upload
    item_title: str
    speaker_name: str


@dataclass(frozen=True, slots=True)
class UploadPage:
    """One page of a summit's uploads, with how many there are in each state."""

    rows: list[UploadRow]
    page: paging.Page  # page.total: the uploads the filter matches
    counts: dict[str, int]  # per state, the whole summit

    @property
    def summit_total(self) -> int:
        """Every upload of the summit, whatever its state."""
        return sum(self.counts.values())


def _counts(db: DbSession, summit: Summit) -> dict[str, int]:
    """How many of the summit's uploads are in each state (0 for a state none is in)."""
    counts = dict.fromkeys((s.value for s in UploadState), 0)
    by_state = (
        select(Upload.state, func.count())
        .join(Item, Item.id == Upload.item_id)
        .where(Item.summit_id == summit.id)
        .group_by(Upload.state)
    )
    counts.update({name: int(n) for name, n in db.execute(by_state)})
    return counts


def _matching(summit: Summit, state: str, text: str) -> Select[Upload, str, str]:
    """The summit's uploads of one state (any: ""), whose file, item or speaker holds text."""
    # An upload belongs to a summit through its item (Upload has no summit_id of its own).
    query = (
        select(Upload, Item.title, Speaker.name)
        .join(Item, Item.id == Upload.item_id)
        .join(SpeakerInvitation, SpeakerInvitation.id == Upload.invitation_id)
        .join(Speaker, Speaker.id == SpeakerInvitation.speaker_id)
        .where(Item.summit_id == summit.id)
    )
    if state:
        query = query.where(Upload.state == state)
    if text:
        query = query.where(
            or_(
                Upload.filename.icontains(text, autoescape=True),
                Item.title.icontains(text, autoescape=True),
                Speaker.name.icontains(text, autoescape=True),
            )
        )
    return query


def page_of_uploads(
    db: DbSession,
    summit: Summit,
    *,
    state: str = "",
    text: str = "",
    sort: str = "newest",
    page: int = 1,
    size: int = paging.DEFAULT_PAGE_SIZE,
) -> UploadPage:
    """A page of the summit's uploads of one state, whose file, item or speaker holds ``text``."""
    if state and state not in set(UploadState):
        raise ValidationError(
            f"{state[:40]!r} is not a state of an upload: choose one from the list.",
            field="state",
        )
    if sort not in UPLOAD_SORTS:
        raise ValidationError(f"{sort!r} is not a way to sort uploads.", field="sort")
    text = paging.search_text(text)
    counts = _counts(db, summit)
    query = _matching(summit, state, text)
    if text:
        total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    else:
        total = counts[state] if state else sum(counts.values())
    shown = paging.Page.of(page, size, total)
    orders: dict[str, list[ColumnElement[Any]]] = {
        "newest": [Upload.id.desc()],
        "oldest": [Upload.id.asc()],
        "name": [func.lower(Upload.filename), Upload.id.asc()],
        "size": [Upload.size.desc(), Upload.id.desc()],
    }
    rows = db.execute(query.order_by(*orders[sort]).limit(shown.size).offset(shown.offset))
    return UploadPage(
        [UploadRow(upload, title, name) for upload, title, name in rows], shown, counts
    )
