"""The RTMP key gate (parsed from real RTMP bytes) and golden argv of the ingest listeners."""

from __future__ import annotations

import stat
import struct
from pathlib import Path

import pytest

from summitcast.media.ingest import rtmp_listener_argv, srt_listener_argv
from summitcast.media.listeners import SecretScript, srt_listener_script
from summitcast.media.rtmp_gate import HANDSHAKE_BYTES, RtmpRefusedError, RtmpSniffer

pytestmark = pytest.mark.unit

KEY = "s3cret-key-0123456789abcdefghijk"


def _amf0(*values: object) -> bytes:
    """Encode strings, numbers, None and {} (empty object) as AMF0."""
    out = b""
    for value in values:
        if isinstance(value, str):
            raw = value.encode()
            out += b"\x02" + struct.pack(">H", len(raw)) + raw
        elif isinstance(value, float):
            out += b"\x00" + struct.pack(">d", value)
        elif value is None:
            out += b"\x05"
        elif value == {}:
            out += b"\x03" + b"\x00\x00\x09"
        else:
            raise TypeError(value)
    return out


def _message(csid: int, type_id: int, payload: bytes, chunk_size: int = 128) -> bytes:
    """One RTMP message as chunks: a type-0 header, then type-3 continuations."""
    header = bytes([csid]) + b"\x00\x00\x00" + len(payload).to_bytes(3, "big")
    header += bytes([type_id]) + b"\x01\x00\x00\x00"  # message stream id 1, little-endian
    out = header + payload[:chunk_size]
    for at in range(chunk_size, len(payload), chunk_size):
        out += bytes([0xC0 | csid]) + payload[at : at + chunk_size]
    return out


def _client_bytes(key: str, *, chunk_size: int = 128) -> bytes:
    """What OBS or ffmpeg sends up to its publish: handshake, connect, createStream, publish."""
    data = b"\x03" + b"\x00" * (HANDSHAKE_BYTES - 1)
    if chunk_size != 128:
        data += _message(2, 1, struct.pack(">I", chunk_size))
    connect = _amf0("connect", 1.0, {})
    data += _message(3, 20, connect, chunk_size)
    data += _message(3, 20, _amf0("createStream", 2.0, None), chunk_size)
    data += _message(8, 20, _amf0("publish", 3.0, None, key, "live"), chunk_size)
    return data


def _sniffer() -> RtmpSniffer:
    return RtmpSniffer(lambda offered: offered == KEY)


def test_rtmp_sniffer_accepts_right_key() -> None:
    sniffer = _sniffer()
    sniffer.feed(_client_bytes(KEY))
    assert sniffer.accepted


def test_rtmp_sniffer_accepts_right_key_fed_byte_by_byte() -> None:
    sniffer = _sniffer()
    for byte in _client_bytes(KEY):
        sniffer.feed(bytes([byte]))
    assert sniffer.accepted


def test_rtmp_sniffer_accepts_key_with_query_and_large_chunks() -> None:
    sniffer = _sniffer()
    sniffer.feed(_client_bytes(KEY + "?obs=1", chunk_size=4096))
    assert sniffer.accepted


def test_rtmp_sniffer_reads_publish_split_over_small_chunks() -> None:
    sniffer = _sniffer()
    sniffer.feed(_client_bytes(KEY, chunk_size=16))  # the publish spans four chunks
    assert sniffer.accepted


def test_rtmp_sniffer_refuses_long_wrong_name_split_over_chunks() -> None:
    with pytest.raises(RtmpRefusedError, match="wrong stream key"):
        _sniffer().feed(_client_bytes(KEY + "x" * 300))  # spans three 128-byte chunks


@pytest.mark.parametrize("offered", ["", "wrong", KEY[:-1], KEY + "x", KEY.upper()])
def test_rtmp_sniffer_refuses_wrong_key(offered: str) -> None:
    with pytest.raises(RtmpRefusedError, match="wrong stream key"):
        _sniffer().feed(_client_bytes(offered))


def test_rtmp_sniffer_refuses_media_before_publish() -> None:
    data = b"\x03" + b"\x00" * (HANDSHAKE_BYTES - 1) + _message(4, 9, b"\x17\x00" * 10)
    with pytest.raises(RtmpRefusedError, match="media before"):
        _sniffer().feed(data)


def test_rtmp_sniffer_refuses_a_flood_without_publish() -> None:
    sniffer = _sniffer()
    sniffer.feed(b"\x03" + b"\x00" * (HANDSHAKE_BYTES - 1))
    # A header announcing a 16 MiB command, then its chunks, 1 KiB at a time.
    length = (0xFFFFFF).to_bytes(3, "big")
    header = b"\x03" + b"\x00" * 3 + length + b"\x14" + b"\x01" + b"\x00" * 3
    huge = header + b"\x00" * 128 + (b"\xc3" + b"\x00" * 128) * 1600
    with pytest.raises(RtmpRefusedError, match="too much data"):
        for at in range(0, 200_000, 1024):
            sniffer.feed(huge[at : at + 1024])


def test_rtmp_sniffer_refuses_endless_empty_messages() -> None:
    sniffer = _sniffer()
    sniffer.feed(b"\x03" + b"\x00" * (HANDSHAKE_BYTES - 1))
    # Zero bytes parse as empty messages: the buffer stays empty, the count still grows.
    with pytest.raises(RtmpRefusedError, match="too much data"):
        for _ in range(100):
            sniffer.feed(b"\x00" * 1024)


def test_rtmp_sniffer_refuses_continuation_without_header() -> None:
    data = b"\x03" + b"\x00" * (HANDSHAKE_BYTES - 1) + b"\xc5" + b"\x00" * 10
    with pytest.raises(RtmpRefusedError, match="without a full header"):
        _sniffer().feed(data)


def test_rtmp_sniffer_after_accept_passes_everything() -> None:
    sniffer = _sniffer()
    sniffer.feed(_client_bytes(KEY))
    sniffer.feed(_message(4, 9, b"\x17" * 500_000))  # media after publish: not even parsed
    assert sniffer.accepted


def test_rtmp_listener_argv_is_golden() -> None:
    assert rtmp_listener_argv("ffmpeg", 41935, 50000) == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-progress", "pipe:1", "-stats_period", "1"],
        *["-listen", "1", "-i", "rtmp://127.0.0.1:41935/live/stream"],
        *["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy"],
        *["-f", "mpegts", "udp://127.0.0.1:50000?pkt_size=1316"],
    ]


def test_rtmp_listener_argv_for_an_interpreter_probes_briefly() -> None:
    assert rtmp_listener_argv("ffmpeg", 41935, 50000, audio_only=True) == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-progress", "pipe:1", "-stats_period", "1"],
        *["-probesize", "32768", "-analyzeduration", "500000"],
        *["-listen", "1", "-i", "rtmp://127.0.0.1:41935/live/stream"],
        *["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy"],
        *["-f", "mpegts", "udp://127.0.0.1:50000?pkt_size=1316"],
    ]


def test_srt_listener_argv_is_golden_and_holds_no_key() -> None:
    argv = srt_listener_argv("ffmpeg", Path("/run/secret/srt.ffconcat"), 50001)
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-progress", "pipe:1", "-stats_period", "1"],
        *["-probesize", "200000", "-analyzeduration", "500000"],
        *["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,srt"],
        *["-i", "/run/secret/srt.ffconcat"],
        *["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy"],
        *["-f", "mpegts", "udp://127.0.0.1:50001?pkt_size=1316"],
    ]


def test_srt_listener_script_is_golden() -> None:
    assert srt_listener_script("0.0.0.0", 9000, KEY) == (
        "ffconcat version 1.0\n"
        "file 'srt://0.0.0.0:9000?mode=listener&latency=120000'\n"
        f"option passphrase '{KEY}'\n"
        "option pbkeylen 16\n"
        "option probesize 200000\n"
        "option analyzeduration 500000\n"
    )


def test_srt_listener_script_quotes_a_key_with_a_quote() -> None:
    script = srt_listener_script("127.0.0.1", 9000, "it's-a-key-0123")
    assert "option passphrase 'it'\\''s-a-key-0123'\n" in script


def test_secret_script_is_private_and_gone_after_close() -> None:
    secret = SecretScript("srt.ffconcat", "hello")
    try:
        assert secret.path.read_text() == "hello"
        assert stat.S_IMODE(secret.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret.folder.stat().st_mode) == 0o700
    finally:
        secret.close()
    assert not secret.folder.exists()
