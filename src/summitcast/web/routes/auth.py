"""Log in and out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from summitcast.services import accounts
from summitcast.services.accounts import RateLimiter
from summitcast.web.deps import DbDep
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    # Only same-site paths: an open redirect would let a phishing link borrow our login page.
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/backstage"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/backstage") -> Response:
    """The login page."""
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=[Depends(verify_csrf)])
def login(
    request: Request,
    db: DbDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/backstage",
) -> Response:
    """Check the password, then start a fresh session (new CSRF token, no fixation)."""
    limiter: RateLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    limiter.hit(f"login:{client}")
    user = accounts.authenticate(db, email=email, password=password)
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["pw"] = user.password_hash[-16:]
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request) -> Response:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/", status_code=303)
