"""Which log of a summit folder is published live: the folder's `live.json` names it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from summitcast.audit.live import STATE_SUFFIX, snapshot_of

__all__ = ["LIVE_POINTER", "is_finished", "live_log_in", "open_live_folders", "point_to"]

log = logging.getLogger(__name__)

LIVE_POINTER = "live.json"  # in the summit's folder: which log is the live one


def live_log_in(folder: Path) -> Path | None:
    """Return the folder's live log (finished or not), or None when none was ever started."""
    pointer = folder / LIVE_POINTER
    try:
        name = json.loads(pointer.read_bytes())["log_file"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("%s is unreadable: treated as no live log", pointer)
        return None
    path = pointer.with_name(str(name))
    # A log or snapshot removed by hand (or a half-copied folder) is no live log either.
    if not path.is_file() or not path.with_name(path.name + STATE_SUFFIX).is_file():
        return None
    return path


def is_finished(path: Path) -> bool:
    """Return whether a live log got its figures record (publishing it finished it)."""
    return snapshot_of(path)[1]


def point_to(folder: Path, path: Path) -> None:
    """Make `path` the folder's live log (the pointer is replaced whole, never half written)."""
    pointer = folder / LIVE_POINTER
    partial = folder / f".{LIVE_POINTER}.partial"
    partial.write_text(json.dumps({"log_file": path.name}), encoding="utf-8")
    partial.replace(pointer)


def open_live_folders(attendance_dir: Path) -> list[str]:
    """Return the names of the summit folders (their slugs) whose live log is not finished."""
    slugs = []
    for pointer in sorted(attendance_dir.glob(f"*/{LIVE_POINTER}")):
        try:
            name = json.loads(pointer.read_bytes())["log_file"]
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable: treated as no live log", pointer)
            continue
        path = pointer.with_name(str(name))
        if path.with_name(path.name + STATE_SUFFIX).is_file() and not is_finished(path):
            slugs.append(pointer.parent.name)
    return slugs
