"""The HLS origin: playlists and segments of each session, with CDN-friendly cache headers."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from summitcast.domain.programme import SLUG_RE
from summitcast.errors import NotFoundError, ValidationError
from summitcast.media.http_cache import cache_headers_for
from summitcast.media.ladder import MASTER_NAME
from summitcast.media.segment_store import LocalSegmentStore, clean_path
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.web.edge import RowId

router = APIRouter(include_in_schema=False)


def master_url(summit_slug: str, session_id: int) -> str:
    """Where players fetch a session's master playlist."""
    return f"/hls/{summit_slug}/{session_id}/{MASTER_NAME}"


@router.get("/hls/{summit}/{session_id}/{path:path}")
def hls_file(request: Request, summit: str, session_id: RowId, path: str) -> Response:
    """One playlist or segment of a session, from its segment store (404 for anything else)."""
    if not SLUG_RE.match(summit) or session_id < 1:
        raise NotFoundError("No such stream.")
    try:
        # The store refuses absolute paths, "..", "." and backslashes: nothing escapes it.
        name = clean_path(path)
    except ValidationError as exc:
        raise NotFoundError("No such stream file.") from exc
    if any(part.startswith(".") for part in PurePosixPath(name).parts):
        raise NotFoundError("No such stream file.")  # temporary and hidden files
    manager: BroadcastManager = request.app.state.broadcasts
    store = manager.store_for(summit, session_id)
    headers = cache_headers_for(name)
    media_type = headers.pop("Content-Type")
    if isinstance(store, LocalSegmentStore):
        # The default: ffmpeg's own folder, served straight from disk (sendfile, no copy).
        target = store.local_path(name)
        try:
            found = target.is_file()
        except (OSError, ValueError):  # a name the file system refuses (too long, a NUL byte)
            found = False
        if not found:
            raise NotFoundError("No such stream file.")
        if name.endswith(".m3u8"):
            # Read whole: ffmpeg replaces playlists by renaming, so one read sees one version.
            return Response(target.read_bytes(), media_type=media_type, headers=headers)
        return FileResponse(target, media_type=media_type, headers=headers)
    data = store.get(name)
    if data is None:
        raise NotFoundError("No such stream file.")
    return Response(data, media_type=media_type, headers=headers)
