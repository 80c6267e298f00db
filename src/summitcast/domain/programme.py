"""The programme: summits, days, sessions, items in a run of show, speakers, and their rules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from summitcast.errors import ValidationError

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_ITEM_DURATION_S = 24 * 3600


class ItemKind(StrEnum):
    """What an item of the run of show puts on air."""

    SPEECH = "speech"
    VIDEO = "video"
    SLATE = "slate"
    LIVE = "live"
    BREAK = "break"


class ItemStatus(StrEnum):
    """Where an item stands, from planning to after it was on air."""

    PLANNED = "planned"
    MISSING = "missing"
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    APPROVED = "approved"
    PROBLEM = "problem"
    ON_AIR = "on_air"
    DONE = "done"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class TimedItem:
    """An item's place in time once the run of show is laid end to end."""

    item_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class SessionTiming:
    """How a session's items fit into its planned window."""

    planned_seconds: int
    running_seconds: int

    @property
    def overrun_seconds(self) -> int:
        """Seconds the items run past the planned end (0 when they fit)."""
        return max(0, self.running_seconds - self.planned_seconds)

    @property
    def spare_seconds(self) -> int:
        """Seconds left unused before the planned end."""
        return max(0, self.planned_seconds - self.running_seconds)


@dataclass(frozen=True, slots=True)
class Window:
    """A named span of time, used to find overlaps between sessions."""

    key: int
    title: str
    start: datetime
    end: datetime


def slugify(text: str) -> str:
    """Make a URL slug from any title, keeping only ASCII letters, digits and dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:64].strip("-")


def validate_slug(slug: str) -> str:
    """Return the slug if it is usable in URLs, else explain what is allowed."""
    if not SLUG_RE.match(slug):
        raise ValidationError(
            "A slug is 3 to 64 characters of lowercase letters, digits and dashes, "
            f"starting and ending with a letter or digit; got {slug!r}.",
            field="slug",
        )
    return slug


def validate_time_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone named, or say it is unknown."""
    if not name or name not in available_timezones():
        raise ValidationError(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'.",
            field="time_zone",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - guarded above
        raise ValidationError(f"Unknown time zone {name!r}.", field="time_zone") from exc


def validate_languages(codes: Sequence[str]) -> tuple[str, ...]:
    """Return language codes (BCP 47 primary tags like 'en', 'pt-BR'), deduplicated, in order."""
    seen: list[str] = []
    for raw in codes:
        code = raw.strip()
        if not code:
            continue
        if not LANGUAGE_RE.match(code):
            raise ValidationError(
                f"{code!r} is not a language code: use two or three letters such as 'en' or 'fr'.",
                field="languages",
            )
        if code not in seen:
            seen.append(code)
    if not seen:
        raise ValidationError("Offer at least one language, such as 'en'.", field="languages")
    return tuple(seen)


def validate_summit_dates(start: date, end: date) -> None:
    """Refuse a summit that ends before it starts or runs longer than a month."""
    if end < start:
        raise ValidationError("The summit ends before it starts.", field="end_date")
    if (end - start).days > 31:
        raise ValidationError("A summit may run at most 31 days.", field="end_date")


def validate_window(start: datetime, end: datetime) -> None:
    """Refuse a session window that is not time-zone aware or ends before it starts."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("Session times must carry a time zone.", field="planned_start")
    if end <= start:
        raise ValidationError("A session must end after it starts.", field="planned_end")
    if end - start > timedelta(hours=24):
        raise ValidationError("A session may last at most 24 hours.", field="planned_end")


def validate_duration(seconds: int) -> int:
    """Return a planned item duration in seconds if it is plausible."""
    if seconds < 0 or seconds > MAX_ITEM_DURATION_S:
        raise ValidationError(
            "An item lasts between 0 seconds and 24 hours.", field="planned_duration_s"
        )
    return seconds


def parse_duration(text: str) -> int:
    """Parse '90', '5:30' (minutes:seconds) or '1:05:30' into seconds."""
    parts = text.strip().split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise ValidationError(
            f"{text!r} is not a duration: write minutes (e.g. '8'), 'MM:SS' or 'HH:MM:SS'.",
            field="planned_duration",
        )
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:
        return validate_duration(numbers[0] * 60)
    if any(n >= 60 for n in numbers[1:]):
        raise ValidationError(
            f"{text!r}: minutes and seconds must be below 60.", field="planned_duration"
        )
    seconds = numbers[-1] + numbers[-2] * 60 + (numbers[-3] * 3600 if len(numbers) == 3 else 0)
    return validate_duration(seconds)


def format_duration(seconds: int) -> str:
    """Show seconds as 'H:MM:SS' or 'M:SS'."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def reorder(ids: Sequence[int], moved: int, new_index: int) -> list[int]:
    """Return the ids with `moved` placed at `new_index` (clamped), others keeping their order."""
    if moved not in ids:
        raise ValidationError(f"Item {moved} is not in this run of show.", field="item")
    rest = [i for i in ids if i != moved]
    index = max(0, min(new_index, len(rest)))
    return [*rest[:index], moved, *rest[index:]]


def check_full_order(current: Sequence[int], proposed: Sequence[int]) -> list[int]:
    """Accept a proposed order only if it is a permutation of the current items."""
    if sorted(current) != sorted(proposed) or len(set(proposed)) != len(proposed):
        raise ValidationError(
            "The new order must list every item of the session exactly once.", field="order"
        )
    return list(proposed)


def total_running_time(durations: Sequence[int]) -> int:
    """Sum of planned item durations in seconds."""
    return sum(durations)


def lay_out(start: datetime, items: Sequence[tuple[int, int]]) -> list[TimedItem]:
    """Place (item id, duration) pairs end to end from the session start."""
    laid: list[TimedItem] = []
    cursor = start
    for item_id, duration in items:
        end = cursor + timedelta(seconds=duration)
        laid.append(TimedItem(item_id=item_id, start=cursor, end=end))
        cursor = end
    return laid


def session_timing(start: datetime, end: datetime, durations: Sequence[int]) -> SessionTiming:
    """Compare a session's planned window with the running time of its items."""
    return SessionTiming(
        planned_seconds=int((end - start).total_seconds()),
        running_seconds=total_running_time(durations),
    )


def overlaps(windows: Sequence[Window]) -> list[tuple[Window, Window]]:
    """Pairs of windows that overlap in time (touching ends do not count)."""
    ordered = sorted(windows, key=lambda w: (w.start, w.end, w.key))
    found: list[tuple[Window, Window]] = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            if second.start >= first.end:
                break
            found.append((first, second))
    return found


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of a moment in the summit's time zone."""
    return moment.astimezone(zone).date()
