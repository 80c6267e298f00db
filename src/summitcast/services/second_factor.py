"""Second sign-in factors: passkeys (WebAuthn), an authenticator app (TOTP), recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import segno
from sqlalchemy import CursorResult, Update, delete, exists, func, select, update
from sqlalchemy.orm import Session as DbSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from summitcast.domain import sealing
from summitcast.domain import second_factor as rules
from summitcast.domain.accounts import Role
from summitcast.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from summitcast.services.accounts import Actor, user_of_session
from summitcast.storage.tables import (
    Membership,
    RecoveryCode,
    TotpSecret,
    User,
    WebAuthnCredential,
    utcnow,
)

# Roles that must sign in with a second factor in production (and platform admins).
STAFF_ROLES = (Role.ORGANISER.value, Role.PRODUCER.value)
# What a session signed in with (web/routes/second_factor.py): each is a second factor.
STRONG_FACTORS = frozenset({"passkey", "totp", "recovery"})
ISSUER = "summitcast"
# A credential JSON from a browser is a few KiB; anything far larger is not one.
MAX_CREDENTIAL_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who passkeys are made for: the site's host name (RP ID) and its origin."""

    rp_id: str
    origin: str
    name: str = ISSUER


def relying_party(base_url: str) -> RelyingParty:
    """The relying party of the site served at base_url."""
    parts = urlsplit(base_url)
    return RelyingParty(
        rp_id=parts.hostname or "localhost", origin=f"{parts.scheme}://{parts.netloc}"
    )


@dataclass(frozen=True, slots=True)
class Overview:
    """What second factors a user has, for the account page."""

    passkeys: list[WebAuthnCredential]
    totp: bool
    recovery_codes_left: int

    @property
    def any(self) -> bool:
        """True when the user has a second factor to sign in with."""
        return bool(self.passkeys) or self.totp


def overview(db: DbSession, user_id: int) -> Overview:
    """The user's passkeys, whether an authenticator app is set up, and unused recovery codes."""
    passkeys = list(
        db.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user_id)
            .order_by(WebAuthnCredential.id)
        )
    )
    totp = _confirmed_totp(db, user_id) is not None
    left = db.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return Overview(passkeys=passkeys, totp=totp, recovery_codes_left=int(left or 0))


def has_second_factor(db: DbSession, user_id: int) -> bool:
    """True when the user has a passkey or a confirmed authenticator app."""
    return overview(db, user_id).any


def is_staff(db: DbSession, user: User) -> bool:
    """True for a platform admin or anyone who organises or produces a summit."""
    if user.is_admin:
        return True
    return bool(
        db.scalar(
            select(exists().where(Membership.user_id == user.id, Membership.role.in_(STAFF_ROLES)))
        )
    )


def must_enrol(db: DbSession, user: User, *, required: bool) -> bool:
    """True when a second factor is required (production) for this staff user who has none."""
    return required and is_staff(db, user) and not has_second_factor(db, user.id)


# --- passkeys ---------------------------------------------------------------------------


def _user_handle(secret: bytes, user_id: int) -> bytes:
    # The WebAuthn user handle: stable per user, says nothing (not the e-mail, not the id).
    return hmac.new(secret, f"webauthn-user:{user_id}".encode(), hashlib.sha256).digest()


def _descriptors(db: DbSession, user_id: int) -> list[PublicKeyCredentialDescriptor]:
    rows = db.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id))
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(row.credential_id),
            transports=[AuthenticatorTransport(t) for t in row.transports if _transport(t)],
        )
        for row in rows
    ]


def _transport(value: str) -> bool:
    return value in {t.value for t in AuthenticatorTransport}


def passkey_registration_options(
    db: DbSession, rp: RelyingParty, user: User, *, secret: bytes
) -> tuple[str, bytes]:
    """Options for navigator.credentials.create() (JSON) and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=_user_handle(secret, user.id),
        user_display_name=user.display_name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        # The same authenticator twice would be one factor listed as two.
        exclude_credentials=_descriptors(db, user.id),
    )
    return options_to_json(options), options.challenge


def _credential(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or len(json.dumps(data)) > MAX_CREDENTIAL_CHARS:
        raise ValidationError("The browser sent no passkey answer; try again.", field="credential")
    return data


def register_passkey(
    db: DbSession,
    rp: RelyingParty,
    user: User,
    *,
    credential: Any,
    challenge: bytes,
    name: str,
) -> WebAuthnCredential:
    """Check the browser's answer to the registration options and keep the new passkey."""
    label = rules.passkey_label(name)
    try:
        verified = verify_registration_response(
            credential=_credential(credential),
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
        )
    except WebAuthnException as problem:
        raise ValidationError(
            f"This passkey could not be checked ({problem}); try again.", field="credential"
        ) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if db.scalar(
        select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential_id)
    ):
        raise ConflictError("This passkey is registered already.", field="credential")
    response = credential.get("response") if isinstance(credential, dict) else None
    transports = response.get("transports") if isinstance(response, dict) else None
    row = WebAuthnCredential(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[t for t in transports or [] if isinstance(t, str) and _transport(t)],
        name=label,
    )
    db.add(row)
    db.flush()
    return row


def passkey_authentication_options(
    db: DbSession, rp: RelyingParty, user: User
) -> tuple[str, bytes]:
    """Options for navigator.credentials.get() naming the user's passkeys, and the challenge."""
    allowed = _descriptors(db, user.id)
    if not allowed:
        raise NotFoundError("You have no passkey; use a code instead.")
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), options.challenge


def verify_passkey(
    db: DbSession, rp: RelyingParty, user: User, *, credential: Any, challenge: bytes
) -> WebAuthnCredential:
    """Check a passkey's signature over the challenge, and that its counter moved on."""
    data = _credential(credential)
    raw_id = data.get("id")
    row = (
        db.scalar(
            select(WebAuthnCredential).where(
                WebAuthnCredential.credential_id == raw_id,
                WebAuthnCredential.user_id == user.id,
            )
        )
        if isinstance(raw_id, str)
        else None
    )
    if row is None:
        raise AuthenticationError("This passkey is not one of yours here; try another.")
    try:
        verified = verify_authentication_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=row.public_key,
            # A counter that did not go up means a cloned authenticator (the library refuses).
            credential_current_sign_count=row.sign_count,
        )
    except WebAuthnException:
        raise AuthenticationError("The passkey's answer did not check out; try again.") from None
    row.sign_count = verified.new_sign_count
    row.last_used_at = utcnow()
    return row


def remove_passkey(db: DbSession, user: User, passkey_id: int, *, required: bool) -> None:
    """Delete one of the user's passkeys (not the last factor where one is required)."""
    row = db.scalar(
        select(WebAuthnCredential).where(
            WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user.id
        )
    )
    if row is None:
        raise NotFoundError("No such passkey.")
    if required and is_staff(db, user):
        now = overview(db, user.id)
        if len(now.passkeys) - 1 + int(now.totp) < 1:
            raise ConflictError(
                "Staff need a second factor here: add another passkey or an authenticator "
                "app before removing this one."
            )
    db.delete(row)


# --- authenticator app (TOTP) -----------------------------------------------------------


def _confirmed_totp(db: DbSession, user_id: int) -> TotpSecret | None:
    return db.scalar(
        select(TotpSecret).where(
            TotpSecret.user_id == user_id, TotpSecret.confirmed_at.is_not(None)
        )
    )


def _context(user_id: int) -> bytes:
    # Binds a sealed secret to its row's user: one user's sealed secret copied onto
    # another's row does not open.
    return f"totp:{user_id}".encode()


def start_totp(db: DbSession, user: User, *, key: bytes) -> str:
    """A new authenticator-app secret for the user, kept sealed until a code confirms it."""
    if _confirmed_totp(db, user.id) is not None:
        raise ConflictError("An authenticator app is set up already; remove it first.")
    secret = rules.new_totp_secret()
    row = db.scalar(select(TotpSecret).where(TotpSecret.user_id == user.id))
    if row is None:
        row = TotpSecret(user_id=user.id)
        db.add(row)
    row.sealed_secret = sealing.seal(key, secret.encode(), context=_context(user.id))
    row.last_step = 0
    db.flush()
    return secret


def pending_totp_secret(db: DbSession, user: User, *, key: bytes) -> str:
    """The secret being set up (shown again while the user has not confirmed it)."""
    row = db.scalar(
        select(TotpSecret).where(TotpSecret.user_id == user.id, TotpSecret.confirmed_at.is_(None))
    )
    if row is None:
        raise NotFoundError("Start setting up an authenticator app first.")
    return _open(row, key)


def _open(row: TotpSecret, key: bytes) -> str:
    try:
        return sealing.unseal(key, row.sealed_secret, context=_context(row.user_id)).decode()
    except sealing.SealError:
        # The server's secret key changed since: the app must be set up again.
        raise AuthenticationError(
            "Your authenticator app can no longer be checked here; use a recovery code "
            "or a passkey, then set the app up again."
        ) from None


def totp_setup(secret: str, *, account: str) -> tuple[str, str]:
    """The otpauth:// URI for an app and the same as a QR code in SVG (inline, no assets)."""
    uri = rules.totp_uri(secret, account=account, issuer=ISSUER)
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return uri, str(svg)


def confirm_totp(db: DbSession, user: User, code: str, *, key: bytes, now: float) -> None:
    """Turn the pending secret on once a code from the app matches it."""
    row = db.scalar(
        select(TotpSecret).where(TotpSecret.user_id == user.id, TotpSecret.confirmed_at.is_(None))
    )
    if row is None:
        raise NotFoundError("Start setting up an authenticator app first.")
    step = rules.totp_step(_open(row, key), code, now=now, after_step=row.last_step)
    if step is None:
        raise ValidationError(
            "That code does not match: check the phone's clock and type the code shown now.",
            field="code",
        )
    row.last_step = step
    row.confirmed_at = utcnow()


def remove_totp(db: DbSession, user: User, *, required: bool) -> None:
    """Turn the authenticator app off (not the last factor where one is required)."""
    row = db.scalar(select(TotpSecret).where(TotpSecret.user_id == user.id))
    if row is None:
        raise NotFoundError("No authenticator app is set up.")
    confirmed = row.confirmed_at is not None
    if confirmed and required and is_staff(db, user) and not overview(db, user.id).passkeys:
        raise ConflictError(
            "Staff need a second factor here: add a passkey before removing the app."
        )
    db.delete(row)


# --- recovery codes ---------------------------------------------------------------------


def new_recovery_codes(db: DbSession, user: User) -> list[str]:
    """Ten fresh one-time codes (shown once); any earlier ones stop working."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = rules.new_recovery_codes()
    db.add_all(RecoveryCode(user_id=user.id, code_hash=rules.hash_recovery_code(c)) for c in codes)
    db.flush()
    return codes


# --- the second step of signing in ------------------------------------------------------


def verify_code(db: DbSession, user: User, code: str, *, key: bytes, now: float) -> str:
    """Accept a code from the authenticator app or an unused recovery code; says which."""
    typed = code.strip()[:64]
    if rules.looks_like_totp(typed):
        row = _confirmed_totp(db, user.id)
        if row is not None:
            step = rules.totp_step(_open(row, key), typed, now=now, after_step=row.last_step)
            # Conditional, so two requests with one code (two workers, say) pass only once.
            if step is not None and _claimed(
                db,
                update(TotpSecret)
                .where(TotpSecret.id == row.id, TotpSecret.last_step < step)
                .values(last_step=step),
            ):
                return "totp"
    elif typed:
        unused = db.scalars(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        for recovery in unused:
            if rules.recovery_code_matches(typed, recovery.code_hash) and _claimed(
                db,
                update(RecoveryCode)
                .where(RecoveryCode.id == recovery.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow()),
            ):
                return "recovery"
    raise AuthenticationError(
        "That code is wrong or was used already: type the code your app shows now, "
        "or an unused recovery code."
    )


def _claimed(db: DbSession, statement: Update) -> bool:
    """Run a conditional UPDATE; True when it changed the one row (nobody was first)."""
    result = cast(
        CursorResult[Any], db.execute(statement, execution_options={"synchronize_session": False})
    )
    return result.rowcount == 1


def session_allowed(db: DbSession, user: User, factor: object) -> bool:
    """Where a second factor is required: a session signed in with one, or a non-staff user's."""
    return factor in STRONG_FACTORS or not is_staff(db, user)


def signed_in_actor(
    db: DbSession, user_id: object, mark: object, factor: object, *, factor_required: bool
) -> Actor | None:
    """The caller a session cookie names; None if gone, re-passworded or lacking a factor."""
    user = user_of_session(db, user_id, mark)
    if user is None:
        return None
    if factor_required and not session_allowed(db, user, factor):
        # Staff signed in without a second factor (a cookie from before it was required).
        return None
    return Actor(user_id=user.id, is_admin=user.is_admin)


def reset_second_factors(db: DbSession, email: str) -> tuple[User, int]:
    """Remove every passkey, authenticator app and recovery code of a user (lost them all)."""
    address = email.strip().lower()
    user = db.scalar(select(User).where(User.email == address))
    if user is None:
        raise NotFoundError(f"No user with e-mail {address}.")
    removed = 0
    for table in (WebAuthnCredential, TotpSecret, RecoveryCode):
        rows = list(db.scalars(select(table).where(table.user_id == user.id)))
        removed += len(rows)
        for row in rows:
            db.delete(row)
    return user, removed
