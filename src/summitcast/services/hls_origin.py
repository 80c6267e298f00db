"""The HLS origin: which of a session's files any node may serve, from whichever store.

The origin asks an ``HlsOrigin`` (``media.segment_store.SessionStores``, wired by the
app from the configured segment store) for the file, so a node without encoders
serves a local folder just as the node with them does. Cache and CORS headers are
HTTP policy and stay in the web edge (``web/hls_cache.py``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Protocol

from summitcast.domain.programme import SLUG_RE
from summitcast.errors import NotFoundError, ValidationError
from summitcast.media.ladder import MASTER_NAME, VOD_PLAYLIST_NAME
from summitcast.media.segment_store import clean_path

__all__ = ["MASTER_NAME", "VOD_PLAYLIST_NAME", "HlsOrigin", "master_path", "stream_file"]


class HlsOrigin(Protocol):
    """Reads a session's HLS files from its segment store."""

    def hls_file(self, summit_slug: str, session_id: int, name: str) -> bytes | Path | None:
        """The file's bytes, the local file holding them (sent as it is), or None."""


def master_path(summit_slug: str, session_id: int) -> str:
    """Where under /hls players fetch a session's master playlist."""
    return f"{summit_slug}/{session_id}/{MASTER_NAME}"


def stream_file(origin: HlsOrigin, summit_slug: str, session_id: int, path: str) -> bytes | Path:
    """One playlist or segment of a session (NotFoundError for anything else)."""
    if not SLUG_RE.match(summit_slug) or session_id < 1:
        raise NotFoundError("No such stream.")
    try:
        # The store refuses absolute paths, "..", "." and backslashes: nothing escapes it.
        name = clean_path(path)
    except ValidationError as exc:
        raise NotFoundError("No such stream file.") from exc
    if any(part.startswith(".") for part in PurePosixPath(name).parts):
        raise NotFoundError("No such stream file.")  # temporary and hidden files
    found = origin.hls_file(summit_slug, session_id, name)
    if found is None:
        raise NotFoundError("No such stream file.")
    return found
