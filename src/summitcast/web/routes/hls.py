"""The HLS origin: playlists and segments of each session, with CDN-friendly cache headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from summitcast.services.hls_origin import master_path, stream_file
from summitcast.web.deps import HlsOriginDep
from summitcast.web.edge import RowId
from summitcast.web.hls_cache import cache_headers_for

router = APIRouter(include_in_schema=False)


def master_url(summit_slug: str, session_id: int) -> str:
    """Where players fetch a session's master playlist."""
    return f"/hls/{master_path(summit_slug, session_id)}"


@router.get("/hls/{summit}/{session_id}/{path:path}")
def hls_file(origin: HlsOriginDep, summit: str, session_id: RowId, path: str) -> Response:
    """One playlist or segment of a session, from its segment store (404 for anything else)."""
    found = stream_file(origin, summit, session_id, path)
    headers = cache_headers_for(path)
    media_type = headers.pop("Content-Type")
    if isinstance(found, Path):
        # A local store's segment, served straight from disk (sendfile, no copy).
        return FileResponse(found, media_type=media_type, headers=headers)
    return Response(found, media_type=media_type, headers=headers)
