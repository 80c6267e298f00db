"""What a location screen sends on its presence socket, and why a heartbeat is refused.

The vocabulary of the presence wire protocol: the conversation itself (hello, acks,
errors, close codes, the HTTP fallback) is written down in
web/transport/presence_protocol.py, the token inside a message in domain/presence.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from summitcast.domain.presence import Heartbeat, parse_heartbeat

MAX_MESSAGE_CHARS = 1024  # a heartbeat message is ~150 characters


class Reason(StrEnum):
    """Why a heartbeat was refused, as sent to the client."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    FUTURE = "future"
    REPLAY = "replay"
    UNKNOWN = "unknown_location"
    PENDING = "pending"
    REVOKED = "revoked"
    WRONG_LOCATION = "wrong_location"
    UNAVAILABLE = "unavailable"
    SIMULATED = "simulated"  # the demo's simulated audience, beating outside a demo summit


@dataclass(frozen=True, slots=True)
class HeartbeatMessage:
    """One message of a screen: ``{"type": "hb", "token": "hb1.…", "ack": true}``."""

    heartbeat: Heartbeat
    # The client asked for {"type": "ack", "seq": n} once the beat is counted.
    ack: bool


def parse_message(text: str) -> HeartbeatMessage | None:
    """Parse one message and its token (signature unchecked); None when malformed."""
    # Fields other than the token and ``ack`` are ignored: the token alone is checked.
    if len(text) > MAX_MESSAGE_CHARS:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    token = message.get("token") if isinstance(message, dict) else None
    if not isinstance(token, str):
        return None
    heartbeat = parse_heartbeat(token)
    if heartbeat is None:
        return None
    return HeartbeatMessage(heartbeat, message.get("ack") is True)
