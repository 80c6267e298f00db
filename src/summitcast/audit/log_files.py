"""A published log's files: the log and its index written whole or not at all, its digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from summitcast.audit.log_index import LogIndexBuilder
from summitcast.audit.records import SignedTreeHead
from summitcast.domain.attendance import AttendanceFigures

__all__ = ["file_sha256", "index_path", "write_index_beside", "write_log_with_index"]

Written = tuple[AttendanceFigures, SignedTreeHead]


def index_path(log_path: Path) -> Path:
    """Return where the index of a log lives: beside it, `<name>.index`."""
    return log_path.with_name(log_path.name + ".index")


def write_index_beside(log_path: Path, index: LogIndexBuilder, head: SignedTreeHead) -> None:
    """Write a log's index under a temporary name, then rename it into place."""
    partial_index = log_path.with_name(f".partial-{log_path.name}.index")
    index.write(partial_index, head)
    partial_index.rename(index_path(log_path))


def write_log_with_index(
    path: Path, write: Callable[[TextIO, LogIndexBuilder], Written]
) -> Written:
    """Have `write` fill a log (telling the index each bucket), then put log and index in place."""
    partial = path.with_name(f".partial-{path.name}")
    index = LogIndexBuilder()
    with partial.open("w", encoding="utf-8") as out:
        figures, head = write(out, index)
    # Renamed only when whole: a reader never sees half a log (nor half an index).
    write_index_beside(path, index, head)
    partial.rename(path)
    return figures, head


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks (a 4-day log is ~3.7 GB)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
