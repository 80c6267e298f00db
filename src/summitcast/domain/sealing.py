"""Secrets sealed at rest: AES-256-GCM under a key derived from the app's secret key.

A sealed value is ``s1.<base64url(nonce || ciphertext || tag)>``. The key is
HKDF-SHA256(app secret key, info = "summitcast sealing/<purpose>"), so each purpose
has its own key and none of them is the app key itself. The associated data names
what the secret belongs to (a location's public id): a sealed value copied to another
row does not open there. Without the app key a sealed value is useless, which is the
point: a copy of the database alone holds no secret anyone can use.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "s1."
_NONCE_BYTES = 12  # AES-GCM's standard nonce; random per seal (2^-32 collision odds at 2^32 seals)
_TAG_BYTES = 16
MAX_SECRET_CHARS = 64  # the longest secret sealed: what a sealed column must be sized for


def sealed_length(secret_chars: int) -> int:
    """The length of the sealed form of an ASCII secret of ``secret_chars`` characters."""
    raw = _NONCE_BYTES + secret_chars + _TAG_BYTES
    return len(SEALED_PREFIX) + (raw * 4 + 2) // 3


class SealError(Exception):
    """A sealed value could not be opened (another key, another context, or tampered with)."""


def sealing_key(app_key: str | bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from the app key (HKDF-SHA256)."""
    if not app_key:
        raise ValueError("app_key must not be empty")
    raw = app_key.encode() if isinstance(app_key, str) else app_key
    # A key of its own per purpose: the session signer and the sealers share no key material.
    derive = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"summitcast sealing/{purpose}".encode(),
    )
    return derive.derive(raw)


def seal(key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """nonce || AES-256-GCM(plaintext); opens only with the same key and context."""
    return _seal(AESGCM(key), plaintext, context)


def unseal(key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """Open what seal() made with the same key and context, else SealError."""
    return _unseal(AESGCM(key), sealed, context)


def _seal(aead: AESGCM, plaintext: bytes, context: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, context)


def _unseal(aead: AESGCM, sealed: bytes, context: bytes) -> bytes:
    if len(sealed) <= _NONCE_BYTES + _TAG_BYTES:
        raise SealError("the sealed value is too short")
    try:
        return aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)
    except InvalidTag:
        raise SealError("the sealed value does not open with this key") from None


class Sealer:
    """Seals and opens short secrets for one purpose under a key derived from the app key."""

    __slots__ = ("_aead",)

    def __init__(self, app_key: bytes, purpose: str) -> None:
        self._aead = AESGCM(sealing_key(app_key, purpose))

    def seal(self, secret: str, bound_to: str) -> str:
        """The sealed form of ``secret``, which opens only for ``bound_to``."""
        if not secret or len(secret) > MAX_SECRET_CHARS or not secret.isascii():
            raise ValueError(f"a secret to seal is 1 to {MAX_SECRET_CHARS} ASCII characters")
        box = _seal(self._aead, secret.encode("ascii"), bound_to.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(box).rstrip(b"=").decode("ascii")

    def open(self, sealed: str, bound_to: str) -> str | None:
        """The secret in ``sealed``; None unless this key sealed it for ``bound_to``."""
        if not sealed.startswith(SEALED_PREFIX):
            return None
        body = sealed[len(SEALED_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        try:
            plain = _unseal(self._aead, raw, bound_to.encode())
        except SealError:
            return None
        return plain.decode("ascii", errors="replace")
