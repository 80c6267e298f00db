"""The HLS origin: playlists and segments of each session, with CDN-friendly cache headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Header
from fastapi.responses import FileResponse, Response

from summitcast.errors import NotFoundError
from summitcast.services.hls_origin import master_path, stream_file
from summitcast.web.deps import HlsOriginDep
from summitcast.web.edge import RowId
from summitcast.web.hls_cache import cache_headers_for, not_modified, validators_for

router = APIRouter(include_in_schema=False)


def master_url(summit_slug: str, session_id: int) -> str:
    """Where players fetch a session's master playlist."""
    return f"/hls/{master_path(summit_slug, session_id)}"


@router.api_route("/hls/{summit}/{session_id}/{path:path}", methods=["GET", "HEAD"])
def hls_file(
    origin: HlsOriginDep,
    summit: str,
    session_id: RowId,
    path: str,
    if_none_match: str | None = Header(default=None),
    if_modified_since: str | None = Header(default=None),
) -> Response:
    """One playlist or segment of a session (304 when the cache's copy is current; 404 else)."""
    found = stream_file(origin, summit, session_id, path)
    headers = cache_headers_for(path)
    media_type = headers.pop("Content-Type")
    stat = None
    if isinstance(found, Path):
        try:
            stat = found.stat()
        except OSError as exc:  # gone between the look-up and now
            raise NotFoundError("No such stream file.") from exc
        validators = validators_for(stat)
    else:
        validators = validators_for(found)
    headers |= validators
    if not_modified(validators, if_none_match, if_modified_since):
        # Edges revalidate expired copies: a 304 costs the origin no body.
        return Response(status_code=304, headers=headers)
    if isinstance(found, Path):
        # A local store's segment, served straight from disk (sendfile, no copy); HEAD
        # gets the headers only (FileResponse knows the method).
        return FileResponse(found, media_type=media_type, headers=headers, stat_result=stat)
    return Response(found, media_type=media_type, headers=headers)
