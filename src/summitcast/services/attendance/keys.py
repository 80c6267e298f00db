"""A summit's attendance folder and keys, found from its row (the files: summitcast.audit.keys)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from summitcast.audit import keys
from summitcast.audit.keys import public_key_b64
from summitcast.config import Settings
from summitcast.storage.tables import Summit

__all__ = ["public_key_b64", "summit_dir", "summit_keys"]


def summit_dir(settings: Settings, summit: Summit) -> Path:
    """Return the summit's attendance folder, made with mode 0700 if missing."""
    return keys.summit_folder(settings.attendance_dir, summit.slug)


def summit_keys(settings: Settings, summit: Summit) -> tuple[Ed25519PrivateKey, bytes]:
    """Return the summit's Ed25519 signing key and audit secret, created on first use."""
    return keys.summit_keys(summit_dir(settings, summit))
