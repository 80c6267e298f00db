"""The load tool's own WebSocket framing (RFC 6455), checked against the RFC's examples."""

from __future__ import annotations

import random

import pytest

from summitcast.loadtest.wire import OP_PING, OP_TEXT, accept_key, client_frame, parse_frames

pytestmark = pytest.mark.unit


def _unmask(frame: bytes) -> tuple[int, bytes]:
    opcode, second = frame[0] & 0x0F, frame[1]
    assert frame[0] & 0x80  # final
    assert second & 0x80  # masked
    length, at = second & 0x7F, 2
    if length == 126:
        length, at = int.from_bytes(frame[2:4], "big"), 4
    key, payload = frame[at : at + 4], frame[at + 4 :]
    assert len(payload) == length
    return opcode, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_accept_key_matches_the_rfc_example() -> None:
    # RFC 6455 §1.3
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 300, 65_535])
def test_client_frame_is_masked_and_round_trips(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    frame = client_frame(OP_TEXT, payload, random.Random(7))
    assert _unmask(frame) == (OP_TEXT, payload)


def test_parse_frames_takes_whole_frames_and_leaves_the_rest() -> None:
    hello = b'{"type":"hello"}'
    big = b"x" * 200
    data = bytearray(b"\x81" + bytes([len(hello)]) + hello)
    data += b"\x89\x00"  # ping without payload
    data += b"\x81\x7e" + len(big).to_bytes(2, "big") + big[:50]  # incomplete
    frames = parse_frames(data)
    assert frames == [(OP_TEXT, hello), (OP_PING, b"")]
    data += big[50:]
    assert parse_frames(data) == [(OP_TEXT, big)]
    assert data == bytearray()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x81\x85abcd12345", "masked"),
        (b"\x01\x01a", "fragmented"),
        (b"\x81\x7f" + (10**6).to_bytes(8, "big"), "bytes"),
    ],
)
def test_parse_frames_refuses_what_a_server_must_not_send(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_frames(bytearray(raw))
