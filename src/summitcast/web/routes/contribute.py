"""Going live from the browser: the speaker's page, their WebRTC offer, and ending it.

Like the rest of the portal these routes are authenticated by the signed link token in
the path. The ones that change something also refuse anything but the speaker's own
page: the ``Origin`` must be this site (``Sec-Fetch-Site`` same-origin where sent), the
session's CSRF token must come in ``X-CSRF-Token``, and the body must be JSON, which no
cross-site form can send. The token is checked first, so a forged link is a 404 whatever
else the request carries (tests/web/test_speaker_access.py).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from summitcast.domain.contribution import MAX_OFFER_BYTES, check_offer
from summitcast.errors import PermissionDeniedError, ValidationError
from summitcast.services import browser_live
from summitcast.web.deps import BrowserBridgeDep, DbDep, SettingsDep
from summitcast.web.routes.speakers import Invitation
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render
from summitcast.web.transport.uploads import PRIVATE

router = APIRouter(include_in_schema=False)
# The JSON around the SDP ({"type": "offer", "sdp": "…"}, escapes) stays well under this.
MAX_BODY_BYTES = MAX_OFFER_BYTES + 8 * 1024
# The site-wide policy refuses the microphone; this page needs it (and the camera).
PERMISSIONS = {"Permissions-Policy": "geolocation=(), microphone=(self), camera=(self)"}


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def same_origin_page(request: Request, settings: SettingsDep) -> None:
    """Refuse a request that does not come from this site's own page (CSRF, other origins)."""
    origin = (request.headers.get("origin") or "").lower()
    ours = {_origin_of(settings.base_url), f"{request.url.scheme}://{request.url.netloc}".lower()}
    site = request.headers.get("sec-fetch-site")
    if origin not in ours or site not in (None, "same-origin"):
        raise PermissionDeniedError("Going live is only possible from your speaker page itself.")
    await verify_csrf(request)


SameOriginPage = Depends(same_origin_page)


class _RefusedError(ValidationError):
    """A request refused with a status of its own (413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


async def _offer_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read up to MAX_BODY_BYTES (413 past it)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise _RefusedError(415, "Send the offer as application/json.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _RefusedError(413, f"The offer is larger than {MAX_BODY_BYTES // 1024} KiB.")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise _RefusedError(413, f"The offer is larger than {MAX_BODY_BYTES // 1024} KiB.")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("The offer is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise ValidationError('The offer must be a JSON object: {"type": "offer", "sdp": …}.')
    return value


@router.get("/speak/{token}/live", response_class=HTMLResponse)
def golive_page(
    request: Request, token: str, db: DbDep, invitation: Invitation, bridge: BrowserBridgeDep
) -> Response:
    """Camera preview and the go-live button (once the producer opened the green room)."""
    page = browser_live.go_live_page(db, invitation, bridge)
    response = render(
        request,
        "speaker/golive.html",
        {
            "p": page.portal,
            "token": token,
            "feed": page.feed,
            "ice_servers": json.dumps(page.ice_servers),
        },
    )
    response.headers.update({**PRIVATE, **PERMISSIONS})
    return response


@router.post("/speak/{token}/live/sessions", status_code=201)
async def go_live(
    request: Request,
    token: str,
    db: DbDep,
    invitation: Invitation,
    bridge: BrowserBridgeDep,
    _page: None = SameOriginPage,
) -> Response:
    """Answer the browser's offer with a peer that sends its picture to the green room."""
    body = await _offer_body(request)
    offer = check_offer(body.get("type"), body.get("sdp"))
    session_id, answer = await browser_live.go_live(db, invitation, offer, bridge)
    url = f"/speak/{token}/live/sessions/{session_id}"
    return JSONResponse(
        {"type": "answer", "sdp": answer, "session": session_id, "url": url},
        status_code=201,
        headers={**PRIVATE, "Location": url},
    )


@router.get("/speak/{token}/live/sessions/{session_id}")
def live_status(
    db: DbDep, invitation: Invitation, session_id: str, bridge: BrowserBridgeDep
) -> Response:
    """Where the page's session stands, and whether the producer has put it on air."""
    status = browser_live.live_status(db, invitation, session_id, bridge)
    return JSONResponse(status, headers=PRIVATE)


@router.delete("/speak/{token}/live/sessions/{session_id}", status_code=204)
async def stop_live(
    db: DbDep,
    invitation: Invitation,
    session_id: str,
    bridge: BrowserBridgeDep,
    _page: None = SameOriginPage,
) -> Response:
    """End the page's session (its Stop button, or the tab closing)."""
    await browser_live.stop_live(db, invitation, session_id, bridge)
    return Response(status_code=204, headers=PRIVATE)
