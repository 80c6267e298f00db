"""Second sign-in factors as pure rules: TOTP steps, recovery codes, passkey names."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pyotp

TOTP_STEP_S = 30
TOTP_DIGITS = 6
# One step either side: a phone's clock a little off, or a code typed as it changed.
TOTP_WINDOW = 1
RECOVERY_CODE_COUNT = 10
MAX_PASSKEY_NAME = 100


def passkey_label(name: str) -> str:
    """A passkey's name as typed: printable, spaces collapsed, capped; "Passkey" if empty."""
    # Printable characters only: a NUL byte, say, would be refused by PostgreSQL.
    printable = "".join(ch for ch in name if ch.isprintable())
    return " ".join(printable.split())[:MAX_PASSKEY_NAME] or "Passkey"


def new_totp_secret() -> str:
    """A fresh authenticator-app secret (base32, 160 bits as RFC 4226 recommends)."""
    return pyotp.random_base32(length=32)


def totp_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app scans (as a QR code) or has typed in."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_S).provisioning_uri(
        name=account, issuer_name=issuer
    )


def looks_like_totp(code: str) -> bool:
    """True when the text is a six-digit code (spaces allowed), as apps show them."""
    return re.fullmatch(r"\d{6}", code.replace(" ", "")) is not None


def totp_step(secret: str, code: str, *, now: float, after_step: int) -> int | None:
    """The step whose code this is, within the window and later than after_step, else None."""
    digits = code.replace(" ", "")
    if not looks_like_totp(digits):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_S)
    current = int(now) // TOTP_STEP_S
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        # A code already accepted (or an older one) is refused: someone who saw it typed
        # cannot use it again within its 90 seconds.
        if step > after_step and hmac.compare_digest(totp.at(step * TOTP_STEP_S), digits):
            return step
    return None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh one-time recovery codes, "xxxxx-xxxxx", without look-alike letters."""
    # 31 letters and digits (no i, l, o, 0, 1), 10 of them: ~49 bits, far past guessing
    # at the few tries a quarter hour the rate limit allows.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(count):
        text = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{text[:5]}-{text[5:]}")
    return codes


def normalise_recovery_code(code: str) -> str:
    """A recovery code as typed, lower-case, without spaces or dashes."""
    return re.sub(r"[\s-]", "", code).lower()


def hash_recovery_code(code: str, *, salt: bytes | None = None) -> str:
    """The stored form of a recovery code: a random salt and SHA-256 of salt and code."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + normalise_recovery_code(code).encode()).hexdigest()
    return f"{salt.hex()}${digest}"


def recovery_code_matches(code: str, stored: str) -> bool:
    """True when the typed code is the one whose hash is stored."""
    salt_hex, _, _ = stored.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return hmac.compare_digest(hash_recovery_code(code, salt=salt), stored)
