"""Pure upload rules: chunk offsets, checksum headers, declarations, sniffing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from summitcast.domain import uploads as rules
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit


def test_plan_chunk_appends_at_the_end() -> None:
    assert rules.plan_chunk(stored=10, offset=10, length=5, size=20, max_chunk=8) == (
        rules.ChunkPlan(overlap=0, append=5, new_offset=15)
    )


def test_plan_chunk_resent_at_same_offset_appends_nothing() -> None:
    assert rules.plan_chunk(stored=15, offset=10, length=5, size=20, max_chunk=8) == (
        rules.ChunkPlan(overlap=5, append=0, new_offset=15)
    )


def test_plan_chunk_overlapping_the_end_appends_the_rest() -> None:
    assert rules.plan_chunk(stored=12, offset=10, length=5, size=20, max_chunk=8) == (
        rules.ChunkPlan(overlap=2, append=3, new_offset=15)
    )


def test_plan_chunk_past_the_end_names_the_offset_to_resume_from() -> None:
    with pytest.raises(rules.OffsetMismatchError) as caught:
        rules.plan_chunk(stored=10, offset=16, length=4, size=20, max_chunk=8)

    assert caught.value.offset == 10
    assert caught.value.status_code == 409


def test_plan_chunk_refuses_oversize_and_overrun() -> None:
    with pytest.raises(ValidationError, match="at most 8 bytes"):
        rules.plan_chunk(stored=0, offset=0, length=9, size=20, max_chunk=8)
    with pytest.raises(ValidationError, match="past the declared size of 20 bytes"):
        rules.plan_chunk(stored=16, offset=16, length=8, size=20, max_chunk=8)


def test_parse_checksum_reads_tus_style_header() -> None:
    digest = hashlib.sha256(b"x").digest()

    assert rules.parse_checksum(f"sha256 {base64.b64encode(digest).decode()}") == digest
    assert rules.parse_checksum(None) is None
    with pytest.raises(ValidationError, match="must use sha256"):
        rules.parse_checksum("md5 AAAA")


def test_sniff_recognises_containers_from_bytes() -> None:
    assert rules.sniff(b"\x00\x00\x00\x18ftypisom") is rules.Sniffed.MP4
    assert rules.sniff(b"\x1a\x45\xdf\xa3\x01") is rules.Sniffed.MATROSKA
    assert rules.sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is rules.Sniffed.WAV
    assert rules.sniff(b"\xef\xbb\xbfWEBVTT\n\n") is rules.Sniffed.WEBVTT
    assert rules.sniff(b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHi") is rules.Sniffed.SRT
    assert rules.sniff(b"PK\x03\x04rest") == "a ZIP archive"
    assert rules.sniff(b"\x89PNG\r\n\x1a\n") == "a PNG picture"
    assert rules.sniff(b"hello") == "a file we do not recognise"


def test_accept_sniffed_refuses_audio_container_kind_mismatch() -> None:
    with pytest.raises(ValidationError, match=r"^This is a wav file, not a video"):
        rules.accept_sniffed(rules.UploadKind.PROGRAMME, b"RIFF\x00\x00\x00\x00WAVEfmt ")


def test_declaration_needs_a_language_for_interpretation() -> None:
    with pytest.raises(ValidationError, match="need the language"):
        rules.validate_declaration(size=1, max_bytes=2, kind="audio", language="", sha256="")
    assert rules.validate_declaration(
        size=1, max_bytes=2, kind="programme", language="fr", sha256="AB" * 32
    ) == (rules.UploadKind.PROGRAMME, "", "ab" * 32)


def test_human_bytes_reads_like_a_person() -> None:
    assert [rules.human_bytes(n) for n in (12, 1500, 8 * 1024**3)] == [
        "12 bytes",
        "2 KB",
        "8.6 GB",
    ]
