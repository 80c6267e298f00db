"""A browser's WebRTC offer: what the go-live page may send, and what is refused."""

from __future__ import annotations

import pytest

from summitcast.domain.contribution import MAX_OFFER_BYTES, check_offer
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit

VIDEO = [
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=sendonly",
    "a=rtpmap:96 VP8/90000",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
    "a=candidate:2 1 udp 2122260223 0b1c2d3e-aaaa-bbbb-cccc-0123456789ab.local 50001 typ host",
]
AUDIO = ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=sendonly", "a=rtpmap:111 opus/48000/2"]
HEAD = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]


def _sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def test_check_offer_keeps_picture_and_sound_and_drops_mdns_candidates() -> None:
    offer = check_offer("offer", _sdp(*HEAD, *VIDEO, *AUDIO))

    assert offer.has_video is True
    assert offer.has_audio is True
    assert ".local" not in offer.sdp
    assert "127.0.0.1 50000 typ host" in offer.sdp
    assert offer.sdp.endswith("\r\n")


def test_check_offer_accepts_a_camera_without_microphone_and_bare_newlines() -> None:
    offer = check_offer("offer", "\n".join([*HEAD, *VIDEO]) + "\n")

    assert offer.has_video is True
    assert offer.has_audio is False


@pytest.mark.parametrize(
    ("kind", "sdp", "message"),
    [
        ("answer", _sdp(*HEAD, *VIDEO), "must be an offer"),
        ("offer", "", "no SDP"),
        ("offer", None, "no SDP"),
        ("offer", "hello", "must start with v=0"),
        ("offer", _sdp(*HEAD, *AUDIO), "no picture"),
        ("offer", _sdp(*HEAD, *VIDEO, *VIDEO), "one picture and one sound"),
        (
            "offer",
            _sdp(*HEAD, *VIDEO, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
            "not application",
        ),
        ("offer", _sdp(*HEAD, *[v.replace("sendonly", "recvonly") for v in VIDEO]), "must send"),
        ("offer", _sdp(*HEAD, *VIDEO, "a=x-evil:\x00"), "control characters"),
        (
            "offer",
            _sdp(*HEAD, *VIDEO, *["a=candidate:9 1 udp 1 127.0.0.1 1 typ host"] * 65),
            "too many network",
        ),
        ("offer", _sdp(*HEAD, *VIDEO, *["a=x"] * 1000), "too many lines"),
        ("offer", _sdp(*HEAD, *VIDEO, "a=" + "x" * MAX_OFFER_BYTES), "larger than 32 KiB"),
    ],
)
def test_check_offer_refuses_what_a_speaker_page_would_not_send(
    kind: str, sdp: object, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        check_offer(kind, sdp)

    assert refused.value.status_code == 422
