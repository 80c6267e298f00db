"""Log in and out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from summitcast.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from summitcast.services import accounts
from summitcast.web.deps import DbDep, LoginDelayDep, LoginLimiterDep, SettingsDep
from summitcast.web.routes import second_factor
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    # Only same-site paths: an open redirect would let a phishing link borrow our login page.
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/backstage"
    return target


# What Form(max_length=…) used to enforce with a bare 422 page: longer input is refused
# in the form, and the password never reaches the (costly) hash.
MAX_EMAIL = 254
MAX_PASSWORD = 1024


def _login_page(
    request: Request,
    *,
    next: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    page = render(
        request,
        "login.html",
        {"next": _safe_next(next), "email": email, "error": error},
        status_code=status_code,
    )
    page.headers.update(headers or {})
    return page


def readable_wait(seconds: int) -> str:
    """A wait as a person reads it: seconds under two minutes, else whole minutes (rounded up)."""
    if seconds < 120:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"


async def _csrf_problem(request: Request) -> str | None:
    """The CSRF check's message when it fails (the form is shown again with it), else None."""
    try:
        await verify_csrf(request)
    except PermissionDeniedError as problem:
        return problem.message
    return None


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/backstage") -> Response:
    """The login page."""
    return _login_page(request, next=next)


@router.post("/login")
def login(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    limiter: LoginLimiterDep,
    delay: LoginDelayDep,
    csrf_problem: Annotated[str | None, Depends(_csrf_problem)],
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/backstage",
) -> Response:
    """Check the password, then start a fresh session (new CSRF token, no fixation).

    Every refusal shows the form again with the e-mail kept and the reason beside it.
    """
    typed, email = email.strip(), email.strip()[:MAX_EMAIL]
    if csrf_problem is not None:
        # A login page left open past the session's life: nothing was checked.
        return _login_page(request, next=next, email=email, error=csrf_problem, status_code=403)
    if not email or not password:
        error = "Enter your e-mail and your password."
        return _login_page(request, next=next, email=email, error=error, status_code=400)
    # Behind a trusted proxy, the address it forwarded (web/proxies.py); hashed by the limiter.
    client = request.client.host if request.client else "unknown"
    try:
        limiter.hit(f"login:{client}")
        if len(typed) > MAX_EMAIL or len(password) > MAX_PASSWORD:
            # The same answer as a wrong password: the length says nothing about the account.
            raise AuthenticationError("E-mail or password is wrong.")
        # Per account too: a wrong password doubles the wait before its next check.
        user = accounts.authenticate_delayed(db, delay, email=email, password=password)
    except RateLimitedError as refused:
        wait = readable_wait(refused.retry_after)
        return _login_page(
            request,
            next=next,
            email=email,
            error=f"Too many attempts to log in; try again in {wait}.",
            status_code=refused.status_code,
            headers={"Retry-After": str(refused.retry_after)},
        )
    except AuthenticationError as wrong:
        # authenticate() never says whether the account exists.
        return _login_page(
            request, next=next, email=email, error=wrong.message, status_code=wrong.status_code
        )
    # A second factor next, where the user has one (or must enrol one, in production).
    return second_factor.after_password(request, db, user, next=_safe_next(next), settings=settings)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request) -> Response:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/", status_code=303)
