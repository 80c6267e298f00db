"""Pure upload rules: chunk offsets, checksum headers, declarations, sniffing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from summitcast.domain import uploads as rules
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit


def test_plan_chunk_appends_at_the_stored_end() -> None:
    assert rules.plan_chunk(stored=16, offset=16, length=8, size=30, chunk_size=8) == (
        rules.ChunkPlan(index=2, append=True)
    )


def test_plan_chunk_resent_below_the_stored_end_is_compared_not_appended() -> None:
    assert rules.plan_chunk(stored=16, offset=8, length=8, size=30, chunk_size=8) == (
        rules.ChunkPlan(index=1, append=False)
    )


def test_plan_chunk_last_chunk_carries_what_is_left() -> None:
    assert rules.plan_chunk(stored=24, offset=24, length=6, size=30, chunk_size=8) == (
        rules.ChunkPlan(index=3, append=True)
    )


def test_plan_chunk_past_the_end_names_the_offset_to_resume_from() -> None:
    with pytest.raises(rules.OffsetMismatchError) as caught:
        rules.plan_chunk(stored=8, offset=16, length=8, size=30, chunk_size=8)

    assert caught.value.offset == 8
    assert caught.value.status_code == 409


def test_plan_chunk_refuses_oversize_misaligned_and_short_chunks() -> None:
    with pytest.raises(ValidationError, match="at most 8 bytes"):
        rules.plan_chunk(stored=0, offset=0, length=9, size=30, chunk_size=8)
    with pytest.raises(
        ValidationError, match="start at multiples of 8 bytes; this one starts at 4"
    ):
        rules.plan_chunk(stored=8, offset=4, length=8, size=30, chunk_size=8)
    with pytest.raises(ValidationError, match=r"must carry 8 bytes .* this one has 5"):
        rules.plan_chunk(stored=8, offset=8, length=5, size=30, chunk_size=8)
    with pytest.raises(ValidationError, match=r"must carry 6 bytes .* this one has 8"):
        rules.plan_chunk(stored=24, offset=24, length=8, size=30, chunk_size=8)


def test_file_checksum_is_the_hash_of_the_chunk_digests_in_order() -> None:
    data = bytes(range(20))
    digests = b"".join(hashlib.sha256(data[at : at + 8]).digest() for at in (0, 8, 16))

    assert rules.file_checksum(data, 8) == hashlib.sha256(digests).hexdigest()
    assert rules.file_checksum(data, 8) != rules.file_checksum(data, 4)


def test_parse_length_requires_a_content_length() -> None:
    assert rules.parse_length(" 42 ") == 42
    with pytest.raises(ValidationError, match="Content-Length"):
        rules.parse_length(None)


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
        rules.validate_declaration(size=1, max_bytes=2, kind="audio", language="", checksum="")
    assert rules.validate_declaration(
        size=1, max_bytes=2, kind="programme", language="fr", checksum="AB" * 32
    ) == (rules.UploadKind.PROGRAMME, "", "ab" * 32)


def test_human_bytes_reads_like_a_person() -> None:
    assert [rules.human_bytes(n) for n in (12, 1500, 8 * 1024**3)] == [
        "12 bytes",
        "2 KB",
        "8.6 GB",
    ]
