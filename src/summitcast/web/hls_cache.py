"""HTTP headers for HLS files: what a CDN may cache, for how long, and as what type.

The HLS origin's cache and CORS policy (``routes/hls.py``): HTTP, so it lives in web.

Live playlists change every segment (2 s), so they live at most one second in any
cache (a session's replay list, a minute); segments and init sections never change
once written, so they are immutable for a long time. A CDN in front of the origin
then absorbs almost all viewer requests: each edge asks the origin for a playlist
about once a second.

Low-latency HLS would add partial segments (``EXT-X-PART``, files such as
``seg_00042.1.m4s``) and blocking playlist reloads (``_HLS_msn``/``_HLS_part``
query strings). Parts are immutable like segments, so they fit the segment rule
as they are; a blocking playlist request must not be cached at all by the
origin's own layer but may be cached by the CDN keyed on its query string with
max-age of one part duration. No ffmpeg build here writes EXT-X-PART (see
VERIFIED.md), so nothing below handles it yet: add a ``.part`` rule and a
query-aware ``cache_headers_for`` when a packager that writes parts arrives.
"""

from __future__ import annotations

import hashlib
import os
from email.utils import formatdate, parsedate_to_datetime
from pathlib import PurePosixPath

from summitcast.services.hls_origin import VOD_PLAYLIST_NAME

PLAYLIST_MAX_AGE_S = 1
# A session's replay list (vod.m3u8, ~1.2 MB after 8 hours) is written once, when the
# session ends; it changes only if the session is run again, so a minute is safe.
REPLAY_PLAYLIST_MAX_AGE_S = 60
SEGMENT_MAX_AGE_S = 365 * 24 * 3600  # a year: immutable content keeps its URL forever

_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}


def content_type_for(path: str) -> str:
    """The Content-Type of an HLS file, by extension."""
    return _CONTENT_TYPES.get(PurePosixPath(path).suffix.lower(), "application/octet-stream")


def cache_headers_for(path: str) -> dict[str, str]:
    """Cache-Control and friends for an HLS file: playlists short, everything else immutable."""
    headers = {"Content-Type": content_type_for(path)}
    suffix = PurePosixPath(path).suffix.lower()
    if PurePosixPath(path).name == VOD_PLAYLIST_NAME:
        headers["Cache-Control"] = f"public, max-age={REPLAY_PLAYLIST_MAX_AGE_S}"
    elif suffix == ".m3u8":
        # A stale playlist delays the live edge; one second matches the
        # freshness a player needs with 2 s segments. stale-while-revalidate is
        # deliberately absent: it would let a CDN serve older playlists.
        headers["Cache-Control"] = f"public, max-age={PLAYLIST_MAX_AGE_S}"
    elif suffix in _CONTENT_TYPES:
        # Segments, init sections (init_*.mp4), WebVTT segments and slates get a
        # new name whenever their content changes.
        headers["Cache-Control"] = f"public, max-age={SEGMENT_MAX_AGE_S}, immutable"
    else:
        headers["Cache-Control"] = "no-store"  # unknown files are not ours to cache
    # Players on other origins (a location screen embedding the player) fetch these.
    headers["Access-Control-Allow-Origin"] = "*"
    return headers


def validators_for(body: bytes | os.stat_result) -> dict[str, str]:
    """ETag (and Last-Modified for a file) so that caches can revalidate with a 304."""
    if isinstance(body, bytes):
        # A playlist read whole: its content is its version (no mtime to trust across
        # a rename). Strong: equal bytes, equal tag.
        return {"ETag": f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'}
    return {
        "ETag": f'"{body.st_mtime_ns:x}-{body.st_size:x}"',
        "Last-Modified": formatdate(body.st_mtime, usegmt=True),
    }


def not_modified(
    validators: dict[str, str], if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a conditional request's copy is still current (RFC 9110 section 13.2.2)."""
    if if_none_match is not None:
        # If-None-Match wins over If-Modified-Since; weak comparison, as for GET and HEAD.
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or validators["ETag"] in tags
    last_modified = validators.get("Last-Modified")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):  # an unparseable date is ignored, as the RFC says
        return False
