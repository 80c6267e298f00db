"""The rules of a browser's WebRTC offer to go live: what a speaker's page may send us.

The offer is untrusted text that an SDP parser (aiortc's) will read, so it is checked
before it gets there: its size, its characters, and its media. A speaker sends one
picture and at most one sound, never receives, and needs no data channel.

Host candidates named ``….local`` (mDNS) are dropped: resolving them would multicast
on the LAN, and a browser that shared its camera (as this page's always has by the
time it offers) lists its real addresses instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from summitcast.errors import ValidationError

MAX_OFFER_BYTES = 32 * 1024  # Chromium's audio+video offer is ~6 KB; Firefox's smaller
MAX_OFFER_LINES = 1000
MAX_CANDIDATES = 64  # a few per network interface and component
ALLOWED_MEDIA = ("audio", "video")
SENDING = ("a=sendonly", "a=sendrecv")


@dataclass(frozen=True, slots=True)
class Offer:
    """A checked offer, ready for the server's peer."""

    sdp: str
    has_video: bool
    has_audio: bool


def check_offer(kind: object, sdp: object) -> Offer:
    """Refuse an offer a speaker's page would not send; return it without mDNS candidates."""
    if kind != "offer":
        raise ValidationError('The description must be an offer (type "offer").', field="type")
    if not isinstance(sdp, str) or not sdp:
        raise ValidationError("The offer has no SDP text.", field="sdp")
    if len(sdp.encode("utf-8")) > MAX_OFFER_BYTES:
        raise ValidationError(
            f"The offer is larger than {MAX_OFFER_BYTES // 1024} KiB.", field="sdp"
        )
    lines = sdp.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_OFFER_LINES:
        raise ValidationError("The offer has too many lines.", field="sdp")
    if not lines or lines[0] != "v=0":
        raise ValidationError("This is not an SDP offer (it must start with v=0).", field="sdp")
    # SDP is printable text; control characters have no place in it (RFC 8866 §9).
    if any(ch < " " and ch != "\t" for line in lines for ch in line):
        raise ValidationError("The offer contains control characters.", field="sdp")
    kept: list[str] = []
    media: list[str] = []
    sends: list[bool] = []
    candidates = 0
    for line in lines:
        if line.startswith("m="):
            media.append(line[2:].split(" ", 1)[0])
            sends.append(False)
        elif line in SENDING and sends:
            sends[-1] = True
        elif line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().endswith(".local"):
                continue  # mDNS: see the module's docstring
            candidates += 1
        kept.append(line)
    if candidates > MAX_CANDIDATES:
        raise ValidationError("The offer lists too many network candidates.", field="sdp")
    unknown = sorted(set(media) - set(ALLOWED_MEDIA))
    if unknown:
        raise ValidationError(
            f"The offer may carry only a picture and a sound, not {', '.join(unknown)}.",
            field="sdp",
        )
    if media.count("video") > 1 or media.count("audio") > 1:
        raise ValidationError("The offer may carry one picture and one sound.", field="sdp")
    if "video" not in media:
        raise ValidationError("The offer carries no picture: allow the camera.", field="sdp")
    if not all(sends):
        raise ValidationError("The offer must send its media, not only receive.", field="sdp")
    return Offer("\r\n".join(kept) + "\r\n", "video" in media, "audio" in media)
