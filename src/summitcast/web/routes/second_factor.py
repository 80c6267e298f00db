"""The second step of logging in, and the account's security page (passkeys, app, codes)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from summitcast.config import Settings
from summitcast.domain.sealing import sealing_key
from summitcast.errors import (
    AuthenticationError,
    RateLimitedError,
    SummitcastError,
    ValidationError,
)
from summitcast.services import DbSession, User, accounts, second_factor
from summitcast.services.accounts import Limiter
from summitcast.web.deps import ActorDep, DbDep, SecondFactorLimiterDep, SettingsDep
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

STEP_PAGE = "/login/second-factor"
SECURITY_PAGE = "/account/security"
# How long a passed password waits for its second factor, and a forced enrolment for
# its first factor, before the password must be typed again.
PENDING_S = 10 * 60
ENROL_S = 30 * 60
CHALLENGE_S = 5 * 60
MAX_CODE = 64
PasskeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _required(settings: Settings) -> bool:
    return settings.environment == "production"


def _keys(settings: Settings) -> tuple[bytes, bytes]:
    """The key that seals authenticator-app secrets, and the one behind WebAuthn user handles."""
    secret = settings.secret_key.get_secret_value()
    return sealing_key(secret, "totp-secret"), sealing_key(secret, "webauthn-user-handle")


def _rp(settings: Settings) -> second_factor.RelyingParty:
    return second_factor.relying_party(settings.base_url)


def _limit(limiter: Limiter, user: User) -> None:
    # Per account: six digits fall to guessing without it, whoever's addresses try.
    limiter.hit(f"second-factor:{user.id}")


def _sign_in(request: Request, user: User, *, factor: str) -> None:
    """Start the fully signed-in session (fresh: new CSRF token, nothing carried over)."""
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["pw"] = accounts.password_mark(user)
    # What the second step used ("none": not asked); production checks it on every request.
    request.session["factor"] = factor


def after_password(
    request: Request, db: DbSession, user: User, *, next: str, settings: Settings
) -> Response:
    """Where a correct password leads: the second step, a forced enrolment, or in."""
    request.session.clear()
    held = {"uid": user.id, "pw": accounts.password_mark(user), "next": next, "at": time.time()}
    if second_factor.has_second_factor(db, user.id):
        request.session["pending"] = held
        return RedirectResponse(STEP_PAGE, status_code=303)
    if second_factor.must_enrol(db, user, required=_required(settings)):
        request.session["enrol"] = held
        return RedirectResponse(SECURITY_PAGE, status_code=303)
    _sign_in(request, user, factor="none")
    return RedirectResponse(next, status_code=303)


def _held(request: Request, db: DbSession, name: str, max_age_s: float) -> User | None:
    """The user a half-finished sign-in (pending or enrol) holds, if still valid."""
    held = request.session.get(name)
    if not isinstance(held, dict) or time.time() - float(held.get("at", 0)) > max_age_s:
        return None
    return accounts.user_of_session(db, held.get("uid"), held.get("pw"))


def _pending(request: Request, db: DbSession) -> User:
    user = _held(request, db, "pending", PENDING_S)
    if user is None:
        request.session.pop("pending", None)
        raise AuthenticationError("Log in with your password first (it was more than 10 minutes).")
    return user


def _next_of(request: Request, name: str) -> str:
    held = request.session.get(name)
    target = held.get("next") if isinstance(held, dict) else None
    return target if isinstance(target, str) and target.startswith("/") else "/backstage"


def _keep_challenge(request: Request, challenge: bytes, purpose: str) -> None:
    # In the signed session cookie: not secret, only bound to this browser; it is
    # dropped when used and refused once older than CHALLENGE_S.
    request.session["challenge"] = {
        "value": bytes_to_base64url(challenge),
        "purpose": purpose,
        "at": time.time(),
    }


def _take_challenge(request: Request, purpose: str) -> bytes:
    kept = request.session.pop("challenge", None)
    if (
        not isinstance(kept, dict)
        or kept.get("purpose") != purpose
        or time.time() - float(kept.get("at", 0)) > CHALLENGE_S
    ):
        raise ValidationError("The passkey request expired; press the button again.")
    return base64url_to_bytes(str(kept["value"]))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("Send the passkey answer as JSON.") from None
    if not isinstance(body, dict):
        raise ValidationError("Send the passkey answer as a JSON object.")
    return body


def _options(text: str) -> Response:
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


# --- the second step of logging in ------------------------------------------------------


def _step_page(
    request: Request, db: DbSession, user: User, *, error: str | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "login_second_factor.html",
        {"factors": second_factor.overview(db, user.id), "error": error},
        status_code=status,
    )


@router.get(STEP_PAGE, response_class=HTMLResponse)
def step_page(request: Request, db: DbDep) -> Response:
    """Ask for the second factor after a correct password (or back to the password)."""
    try:
        user = _pending(request, db)
    except AuthenticationError:
        # Not "/login?next=here": after the password this page is where one goes anyway.
        return RedirectResponse("/login", status_code=303)
    return _step_page(request, db, user)


@router.post(f"{STEP_PAGE}/passkey/options")
def step_passkey_options(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """Authentication options for the user's passkeys."""
    user = _pending(request, db)
    options, challenge = second_factor.passkey_authentication_options(db, _rp(settings), user)
    _keep_challenge(request, challenge, "login")
    return _options(options)


@router.post(f"{STEP_PAGE}/passkey")
async def step_passkey(
    request: Request, db: DbDep, settings: SettingsDep, limiter: SecondFactorLimiterDep
) -> Response:
    """Check the passkey's answer and finish logging in."""
    body = await _json_body(request)
    user = _pending(request, db)
    _limit(limiter, user)
    challenge = _take_challenge(request, "login")
    second_factor.verify_passkey(
        db, _rp(settings), user, credential=body.get("credential"), challenge=challenge
    )
    target = _next_of(request, "pending")
    _sign_in(request, user, factor="passkey")
    return JSONResponse({"next": target})


@router.post(f"{STEP_PAGE}/code")
def step_code(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    limiter: SecondFactorLimiterDep,
    code: Annotated[str, Form()] = "",
) -> Response:
    """Check a code from the authenticator app or a recovery code and finish logging in."""
    user = _pending(request, db)
    try:
        _limit(limiter, user)
        used = second_factor.verify_code(
            db, user, code[:MAX_CODE], key=_keys(settings)[0], now=time.time()
        )
    except RateLimitedError as refused:
        page = _step_page(
            request, db, user, error=f"Too many codes tried; {refused.message}", status=429
        )
        page.headers["Retry-After"] = str(refused.retry_after)
        return page
    except SummitcastError as wrong:
        return _step_page(request, db, user, error=wrong.message, status=wrong.status_code)
    target = _next_of(request, "pending")
    _sign_in(request, user, factor=used)
    return RedirectResponse(target, status_code=303)


# --- the account's security page --------------------------------------------------------


def _account(request: Request, db: DbSession, actor: Any) -> tuple[User, bool]:
    """The signed-in user, or the one a forced enrolment holds (True then)."""
    if actor is not None:
        user = accounts.find_user(db, actor.user_id)
        if user is not None:
            return user, False
    user = _held(request, db, "enrol", ENROL_S)
    if user is None:
        raise AuthenticationError("Log in to do this.")
    return user, True


def _enrolled(request: Request, user: User, enrolling: bool, factor: str) -> None:
    """After the first factor of a forced enrolment, the session is signed in with it."""
    if enrolling:
        target = _next_of(request, "enrol")
        _sign_in(request, user, factor=factor)
        request.session["after_enrol"] = target


@router.get(SECURITY_PAGE, response_class=HTMLResponse)
def security_page(request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep) -> Response:
    """Passkeys, the authenticator app and recovery codes of the signed-in user."""
    user, enrolling = _account(request, db, actor)
    return render(
        request,
        "account_security.html",
        {
            "user": user,
            "factors": second_factor.overview(db, user.id),
            "enrolling": enrolling,
            "required": _required(settings) and second_factor.is_staff(db, user),
            "continue_to": request.session.get("after_enrol"),
        },
    )


@router.post(f"{SECURITY_PAGE}/passkey/options")
def passkey_options(
    request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep
) -> Response:
    """Registration options for a new passkey."""
    user, _ = _account(request, db, actor)
    options, challenge = second_factor.passkey_registration_options(
        db, _rp(settings), user, secret=_keys(settings)[1]
    )
    _keep_challenge(request, challenge, "enrol")
    return _options(options)


@router.post(f"{SECURITY_PAGE}/passkey")
async def add_passkey(
    request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep
) -> Response:
    """Keep the new passkey the browser made."""
    body = await _json_body(request)
    user, enrolling = _account(request, db, actor)
    challenge = _take_challenge(request, "enrol")
    name = body.get("name")
    second_factor.register_passkey(
        db,
        _rp(settings),
        user,
        credential=body.get("credential"),
        challenge=challenge,
        name=name if isinstance(name, str) else "",
    )
    _enrolled(request, user, enrolling, "passkey")
    return JSONResponse({"next": SECURITY_PAGE})


@router.post(f"{SECURITY_PAGE}/passkey/{{passkey_id}}/remove")
def remove_passkey(
    request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep, passkey_id: PasskeyId
) -> Response:
    """Delete one passkey."""
    user, _ = _account(request, db, actor)
    second_factor.remove_passkey(db, user, passkey_id, required=_required(settings))
    return RedirectResponse(SECURITY_PAGE, status_code=303)


@router.post(f"{SECURITY_PAGE}/totp")
def start_totp(request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep) -> Response:
    """Make a new authenticator-app secret and show it."""
    user, _ = _account(request, db, actor)
    second_factor.start_totp(db, user, key=_keys(settings)[0])
    return RedirectResponse(f"{SECURITY_PAGE}/totp", status_code=303)


def _totp_page(
    request: Request,
    db: DbSession,
    user: User,
    settings: Settings,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    secret = second_factor.pending_totp_secret(db, user, key=_keys(settings)[0])
    uri, svg = second_factor.totp_setup(secret, account=user.email)
    return render(
        request,
        "account_totp.html",
        {"secret": secret, "uri": uri, "qr_svg": svg, "error": error},
        status_code=status,
    )


@router.get(f"{SECURITY_PAGE}/totp", response_class=HTMLResponse)
def totp_page(request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep) -> Response:
    """The QR code and secret of the app being set up, and the form for its first code."""
    user, _ = _account(request, db, actor)
    return _totp_page(request, db, user, settings)


@router.post(f"{SECURITY_PAGE}/totp/confirm")
def confirm_totp(
    request: Request,
    db: DbDep,
    actor: ActorDep,
    settings: SettingsDep,
    limiter: SecondFactorLimiterDep,
    code: Annotated[str, Form()] = "",
) -> Response:
    """Turn the app on once its code matches; new recovery codes if there are none."""
    user, enrolling = _account(request, db, actor)
    try:
        _limit(limiter, user)
        second_factor.confirm_totp(
            db, user, code[:MAX_CODE], key=_keys(settings)[0], now=time.time()
        )
    except (ValidationError, RateLimitedError) as wrong:
        return _totp_page(
            request, db, user, settings, error=wrong.message, status=wrong.status_code
        )
    _enrolled(request, user, enrolling, "totp")
    if second_factor.overview(db, user.id).recovery_codes_left == 0:
        return _codes_page(request, second_factor.new_recovery_codes(db, user))
    return RedirectResponse(SECURITY_PAGE, status_code=303)


@router.post(f"{SECURITY_PAGE}/totp/remove")
def remove_totp(request: Request, db: DbDep, actor: ActorDep, settings: SettingsDep) -> Response:
    """Turn the authenticator app off."""
    user, _ = _account(request, db, actor)
    second_factor.remove_totp(db, user, required=_required(settings))
    return RedirectResponse(SECURITY_PAGE, status_code=303)


def _codes_page(request: Request, codes: list[str]) -> Response:
    page = render(
        request,
        "account_recovery_codes.html",
        {"codes": codes, "continue_to": request.session.get("after_enrol")},
    )
    page.headers["Cache-Control"] = "no-store"  # shown once: not kept by the browser either
    return page


@router.post(f"{SECURITY_PAGE}/recovery-codes")
def recovery_codes(request: Request, db: DbDep, actor: ActorDep) -> Response:
    """Ten new one-time codes, shown this once; earlier ones stop working."""
    user, enrolling = _account(request, db, actor)
    if enrolling:
        raise ValidationError("Add a passkey or an authenticator app first.")
    return _codes_page(request, second_factor.new_recovery_codes(db, user))
