"""The playout plan: how a session's run of show becomes one continuous sequence of sources.

Pure rules, no I/O: services probe files and pass in what they found; the media
worker (``summitcast.media.playout``) plays the steps back to back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ValidationError

# Statuses in which a prepared file may go on air as it is.
PLAYABLE_STATUSES = frozenset({ItemStatus.READY, ItemStatus.APPROVED, ItemStatus.ON_AIR})
DEFAULT_HOLD_S = 30.0
# A countdown longer than this is cut to its last part: the worker plays the
# hold slate before it, and the clock on screen stays meaningful.
MAX_COUNTDOWN_S = 15 * 60.0


class SourceKind(StrEnum):
    """What feeds the programme during a step."""

    FILE = "file"
    LIVE = "live"
    SLATE = "slate"


class StepReason(StrEnum):
    """Why a step is in the plan; the producer's screen shows it."""

    COUNTDOWN = "countdown"
    ITEM = "item"
    BREAK = "break"
    FALLBACK_MISSING = "fallback_missing"
    FALLBACK_PROBLEM = "fallback_problem"
    FALLBACK_NO_LIVE_INPUT = "fallback_no_live_input"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class PlayoutItem:
    """One item of the run of show, as the playout planner needs it."""

    item_id: int
    kind: ItemKind
    title: str
    duration_s: float
    status: ItemStatus = ItemStatus.READY
    media_path: str | None = None
    media_ok: bool = True  # False when probing the file failed
    live_url: str | None = None
    speaker_name: str | None = None
    speaker_role: str | None = None
    speaker_country: str | None = None
    subtitle_path: str | None = None
    # Pre-recorded interpretation: (language code, audio file) pairs beside the programme file.
    audio_paths: tuple[tuple[str, str], ...] = ()
    # (language code, .vtt/.srt file) pairs; subtitle_path is the single-language shortcut.
    subtitle_paths: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Slate:
    """A still picture with text, rendered by the media layer."""

    heading: str
    lines: tuple[str, ...] = ()
    countdown_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlayoutStep:
    """One contiguous stretch of the programme from one source."""

    index: int
    item_id: int | None
    source: SourceKind
    reason: StepReason
    offset_s: float  # programme time at which the step starts
    duration_s: float
    path: str | None = None
    url: str | None = None
    slate: Slate | None = None
    subtitle_path: str | None = None

    @property
    def end_s(self) -> float:
        """Programme time at which the step ends."""
        return self.offset_s + self.duration_s


def _speaker_slate(item: PlayoutItem, note: str | None = None) -> Slate:
    """A slate naming the item and its speaker, shown instead of missing media."""
    lines = [item.title] if item.speaker_name else []
    role_line = ", ".join(x for x in (item.speaker_role, item.speaker_country) if x)
    if role_line:
        lines.append(role_line)
    if note:
        lines.append(note)
    return Slate(heading=item.speaker_name or item.title, lines=tuple(lines))


@dataclass(frozen=True, slots=True)
class Choice:
    """The source chosen for one stretch, before it is placed in time."""

    source: SourceKind
    reason: StepReason
    path: str | None = None
    url: str | None = None
    slate: Slate | None = None
    subtitle_path: str | None = None


def choose_source(item: PlayoutItem) -> Choice:
    """Choose the source of one item, falling back to a slate when it cannot play."""
    if item.kind is ItemKind.BREAK:
        return Choice(SourceKind.SLATE, StepReason.BREAK, slate=Slate(item.title or "Break"))
    if item.kind is ItemKind.SLATE:
        return Choice(SourceKind.SLATE, StepReason.ITEM, slate=_speaker_slate(item))
    if item.kind is ItemKind.LIVE:
        if item.live_url:
            return Choice(SourceKind.LIVE, StepReason.ITEM, url=item.live_url)
        slate = _speaker_slate(item, "We will be back in a moment")
        return Choice(SourceKind.SLATE, StepReason.FALLBACK_NO_LIVE_INPUT, slate=slate)
    # SPEECH and VIDEO play a prepared file; without one the speaker's slate stands in.
    if item.media_path is None or item.status is ItemStatus.MISSING:
        return Choice(SourceKind.SLATE, StepReason.FALLBACK_MISSING, slate=_speaker_slate(item))
    if not item.media_ok or item.status not in PLAYABLE_STATUSES:
        return Choice(SourceKind.SLATE, StepReason.FALLBACK_PROBLEM, slate=_speaker_slate(item))
    return Choice(
        SourceKind.FILE, StepReason.ITEM, path=item.media_path, subtitle_path=item.subtitle_path
    )


def plan_playout(
    items: Sequence[PlayoutItem],
    *,
    now: datetime,
    start: datetime,
    session_title: str,
    hold_s: float = DEFAULT_HOLD_S,
) -> list[PlayoutStep]:
    """Lay a session out as steps: countdown, every item (or its fallback slate), hold."""
    if now.tzinfo is None or start.tzinfo is None:
        raise ValidationError("playout times must be timezone-aware")
    if hold_s <= 0:
        raise ValidationError("the hold slate needs a positive duration")
    placed: list[tuple[int | None, Choice, float]] = []
    countdown = (start - now).total_seconds()
    if countdown > 0:
        slate = Slate(heading=session_title, lines=("Starting soon",), countdown_to=start)
        choice = Choice(SourceKind.SLATE, StepReason.COUNTDOWN, slate=slate)
        placed.append((None, choice, min(countdown, MAX_COUNTDOWN_S)))
    for item in items:
        if item.status is ItemStatus.SKIPPED:
            continue
        if item.duration_s <= 0:
            raise ValidationError(f"item {item.item_id} has no duration", field="duration")
        placed.append((item.item_id, choose_source(item), item.duration_s))
    hold = Slate(heading=session_title, lines=("Thank you for watching",))
    placed.append((None, Choice(SourceKind.SLATE, StepReason.HOLD, slate=hold), hold_s))
    steps: list[PlayoutStep] = []
    offset = 0.0
    for index, (item_id, choice, duration) in enumerate(placed):
        steps.append(
            PlayoutStep(
                index=index,
                item_id=item_id,
                source=choice.source,
                reason=choice.reason,
                offset_s=offset,
                duration_s=duration,
                path=choice.path,
                url=choice.url,
                slate=choice.slate,
                subtitle_path=choice.subtitle_path,
            )
        )
        offset += duration
    return steps


def plan_duration(steps: Sequence[PlayoutStep]) -> float:
    """Total programme seconds of a plan."""
    return steps[-1].end_s if steps else 0.0
