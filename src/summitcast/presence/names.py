"""Names every worker must agree on: the pub/sub channels and the presence key of map cells."""

from __future__ import annotations

# Other workers drop cached identities named on this channel (approve, revoke, new link).
CHANGES_CHANNEL = "location-changes"


def presence_channel(summit_key: str) -> str:
    """The channel carrying one summit's public presence figures (sent as is to viewers)."""
    return f"presence:{summit_key}"


def transitions_channel(summit_key: str) -> str:
    """The channel on which a summit's arrivals and drops are announced (after they are stored)."""
    return f"location-transitions:{summit_key}"


def cells_key(summit_key: str) -> str:
    """The presence 'summit' under which public cities are counted, one key per city."""
    return f"{summit_key}:cells"
