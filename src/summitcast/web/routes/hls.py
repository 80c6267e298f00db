"""The HLS origin: playlists and segments of each session, with CDN-friendly cache headers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from summitcast.domain.programme import SLUG_RE
from summitcast.errors import NotFoundError, ValidationError
from summitcast.media.http_cache import cache_headers_for
from summitcast.media.ladder import MASTER_NAME
from summitcast.media.manager import session_folder
from summitcast.media.segment_store import clean_path
from summitcast.web.deps import SettingsDep

router = APIRouter(include_in_schema=False)


def master_url(summit_slug: str, session_id: int) -> str:
    """Where players fetch a session's master playlist."""
    return f"/hls/{summit_slug}/{session_id}/{MASTER_NAME}"


@router.get("/hls/{summit}/{session_id}/{path:path}")
def hls_file(summit: str, session_id: int, path: str, settings: SettingsDep) -> Response:
    """One playlist or segment of a session (404 for anything else)."""
    if not SLUG_RE.match(summit) or session_id < 1:
        raise NotFoundError("No such stream.")
    folder = session_folder(settings, summit, session_id)
    try:
        # The store refuses absolute paths, "..", "." and backslashes: nothing escapes the folder.
        target = folder / clean_path(path)
    except ValidationError as exc:
        raise NotFoundError("No such stream file.") from exc
    if target.name.startswith(".") or not target.is_file():
        raise NotFoundError("No such stream file.")
    headers = cache_headers_for(path)
    media_type = headers.pop("Content-Type")
    if path.endswith(".m3u8"):
        # Read whole: ffmpeg replaces playlists by renaming, so one read sees one version.
        return Response(target.read_bytes(), media_type=media_type, headers=headers)
    return FileResponse(target, media_type=media_type, headers=headers)
