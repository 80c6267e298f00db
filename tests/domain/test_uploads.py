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


def test_file_checksum_is_the_sha256_of_the_whole_file_as_sha256sum_prints_it() -> None:
    data = bytes(range(20))

    assert rules.file_checksum(data) == hashlib.sha256(data).hexdigest()


def test_crc32c_digest_is_the_castagnoli_crc_in_four_big_endian_bytes() -> None:
    # The check value of CRC-32C (RFC 3720, iSCSI) over the nine ASCII digits.
    assert rules.crc32c_digest(b"123456789") == bytes.fromhex("e3069283")
    assert rules.crc32c_digest(b"") == bytes(4)


def test_parse_length_requires_a_content_length() -> None:
    assert rules.parse_length(" 42 ") == 42
    with pytest.raises(ValidationError, match="Content-Length"):
        rules.parse_length(None)


def test_parse_checksum_reads_crc32c_and_sha256_headers() -> None:
    crc = rules.crc32c_digest(b"x")
    sha = hashlib.sha256(b"x").digest()

    assert rules.parse_checksum(f"crc32c {base64.b64encode(crc).decode()}") == (
        rules.ChunkChecksum(rules.ChunkAlgorithm.CRC32C, crc)
    )
    assert rules.parse_checksum(f"SHA256 {base64.b64encode(sha).decode()}") == (
        rules.ChunkChecksum(rules.ChunkAlgorithm.SHA256, sha)
    )
    assert rules.parse_checksum(None) is None
    assert rules.parse_checksum("  ") is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("md5 AAAA", "must be 'crc32c <base64 of 4 bytes>' or 'sha256"),
        ("crc32c", "carries 4 bytes; this one has 0"),
        ("crc32c not-base64!", "not valid base64"),
        (f"crc32c {base64.b64encode(bytes(32)).decode()}", "carries 4 bytes; this one has 32"),
        (f"sha256 {base64.b64encode(bytes(4)).decode()}", "carries 32 bytes; this one has 4"),
    ],
)
def test_parse_checksum_refuses_what_it_cannot_check_with_the_rule(
    header: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        rules.parse_checksum(header)


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
