"""The site's icon: /favicon.ico (browsers ask for it unprompted) and the SVG pages link."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

ICONS = Path(__file__).resolve().parents[1] / "static" / "icons"
# The SVG's link carries ?v=<its hash> (templating.favicon_href), so that URL never
# changes meaning; /favicon.ico has no version and may change with a release.
VERSIONED = "public, max-age=31536000, immutable"
UNVERSIONED = "public, max-age=604800"


@cache
def icon_bytes(name: str) -> bytes:
    """The icon file's bytes, read once per process."""
    return (ICONS / name).read_bytes()


def icon_version(name: str) -> str:
    """A short content hash of the icon, for cache-busting links."""
    return hashlib.sha256(icon_bytes(name)).hexdigest()[:12]


def _icon(request: Request, name: str, media_type: str, cache_control: str) -> Response:
    etag = f'"{icon_version(name)}"'
    headers = {"Cache-Control": cache_control, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(icon_bytes(name), media_type=media_type, headers=headers)


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
def favicon_ico(request: Request) -> Response:
    """The 16 and 32 px bitmap icon."""
    return _icon(request, "favicon.ico", "image/vnd.microsoft.icon", UNVERSIONED)


@router.api_route("/favicon.svg", methods=["GET", "HEAD"])
def favicon_svg(request: Request, v: str = "") -> Response:
    """The vector icon; cached for a year when asked for by its current version."""
    cache_control = VERSIONED if v == icon_version("favicon.svg") else UNVERSIONED
    return _icon(request, "favicon.svg", "image/svg+xml", cache_control)
