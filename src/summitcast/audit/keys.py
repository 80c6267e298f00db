"""A summit's attendance folder and the two secrets in it: its signing key and audit secret.

Decision: each summit's Ed25519 signing key and its audit secret (the HMAC key of
the pseudonyms) are files in ``<attendance dir>/<slug>/``, created with mode 0600 in
a 0700 folder, never logged and never in the database.  The database is what gets
copied around (backups, replicas, support dumps); a stolen dump must not let anyone
sign a forged log or link pseudonyms to locations.  Encrypting them in the database
with the app's secret key would tie them to that key's rotation.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from summitcast.errors import ValidationError

__all__ = ["public_key_b64", "summit_folder", "summit_keys"]

_SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def summit_folder(attendance_dir: Path, slug: str) -> Path:
    """Return the summit's folder (made with mode 0700 if missing); refuse a slug unfit for it."""
    if not _SAFE_SLUG.fullmatch(slug):
        raise ValidationError(f"summit slug {slug!r} cannot name a folder")
    folder = attendance_dir / slug
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _private_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Return a secret file's bytes, creating it with mode 0600 if it does not exist."""
    try:
        # O_EXCL: two workers publishing at once never both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(make())
    return path.read_bytes()


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def summit_keys(folder: Path) -> tuple[Ed25519PrivateKey, bytes]:
    """Return the Ed25519 signing key and audit secret of a summit folder, made on first use."""
    pem = _private_file(folder / "signing-key.pem", _new_signing_key)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError("the summit's signing key is not an Ed25519 key")
    secret = _private_file(folder / "audit-secret", lambda: os.urandom(32))
    return key, secret


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """Return the raw public key in base64, as the log header and `audit verify` spell it."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()
