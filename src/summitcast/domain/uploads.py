"""Resumable uploads: states, the chunk and offset rules, and what a file's first bytes say it is.

The protocol (served by ``summitcast.web.routes.speakers``) is a small, documented
relative of tus 1.0 (https://tus.io/protocols/resumable-upload):

* ``POST /speak/{token}/uploads`` with JSON ``{"size", "kind", "language", "checksum",
  "filename"}`` creates an upload and answers its id, ``offset`` 0 and ``chunk_size``.
* ``PATCH /speak/{token}/uploads/{id}`` with headers ``Upload-Offset`` (where the body
  starts), ``Content-Length`` and optionally ``Upload-Checksum`` (of this body) stores
  one chunk and answers ``204`` with the new ``Upload-Offset``. The checksum is
  ``crc32c <base64>`` (the CRC-32C as 4 big-endian bytes, as Google Cloud Storage's
  ``x-goog-hash``; what upload.js sends) or ``sha256 <base64>``. Chunks are fixed
  blocks: each starts at a multiple of ``chunk_size`` and carries exactly
  ``chunk_size`` bytes, the last one what is left. A chunk sent again at an offset
  already stored is accepted when its CRC-32C equals the stored one (a retry after a
  lost answer, or a resuming browser showing it holds the same file); an offset past
  the stored end answers ``409`` with the current ``Upload-Offset``, and so does a
  chunk another connection is writing at that moment (then with ``Retry-After``).
* ``HEAD`` (headers only) or ``GET`` (JSON) on the same address tells any browser
  session where to resume.

A chunk's ``204`` comes once its bytes are written and recorded, before they are known
to be on disk: their sync runs while the client sends the next chunk, whose record
waits for it, so at most one chunk of an upload is not yet known durable. A finished
upload is synced whole before its checks are queued. Should the machine that wrote
that chunk crash first, the next ``HEAD``, ``GET`` or ``PATCH`` (from any machine)
reads the chunk back and compares it with its CRC-32C, and the offset it answers is
where the intact bytes end.

Two checksums, each for its own job. A chunk's CRC-32C catches bytes damaged on the
way, as the checksums of cloud storage uploads do; it costs ~0.05 CPU-s per GiB on
each side where SHA-256 costs 0.5-3 (with or without the CPU's SHA instructions), which
decides how fast a large file goes through a 2-core server. The file's checksum is the
SHA-256 of the whole file, what ``sha256sum`` prints: the check job computes it once
the last byte lands, before anything relies on the file, and compares it with a
``checksum`` declared up front.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import crc32c

from summitcast.errors import ConflictError, ValidationError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
# Enough bytes to recognise every container below (MPEG-TS needs its second sync byte).
SNIFF_BYTES = 4096


class UploadKind(StrEnum):
    """What an upload is for."""

    PROGRAMME = "programme"  # the speech itself, a video
    AUDIO = "audio"  # interpretation audio in one language
    SUBTITLES = "subtitles"  # subtitles in one language


class UploadState(StrEnum):
    """Where an upload stands."""

    RECEIVING = "receiving"  # chunks arriving; resumable
    CHECKING = "checking"  # all bytes here; probe job queued or running
    PROCESSING = "processing"  # checks passed; normalisation job queued or running
    READY = "ready"  # normalised; the item's media points at the result
    REJECTED = "rejected"  # a check failed; findings say why in plain words
    FAILED = "failed"  # our side failed after retries; problem says why
    EXPIRED = "expired"  # left unfinished too long; bytes deleted
    REPLACED = "replaced"  # a newer upload of the same kind took its place
    # Normalised, but another speaker's file of the item is the one in the programme:
    # the organisers choose between them (a co-speaker never replaces it by uploading).
    STANDBY = "standby"


FINAL_STATES = frozenset(
    {
        UploadState.READY,
        UploadState.REJECTED,
        UploadState.FAILED,
        UploadState.EXPIRED,
        UploadState.STANDBY,
    }
)
# States whose normalised file the organisers may put (back) in the programme.
CHOOSABLE_STATES = frozenset({UploadState.READY, UploadState.STANDBY, UploadState.REPLACED})


class Sniffed(StrEnum):
    """Containers summitcast recognises from bytes, never from names or declared types."""

    MP4 = "mp4"  # ISO base media: .mp4, .mov, .m4a, .3gp
    MATROSKA = "matroska"  # .mkv, .webm
    AVI = "avi"
    MPEGTS = "mpegts"
    WAV = "wav"
    MP3 = "mp3"
    AAC = "aac"  # ADTS
    FLAC = "flac"
    OGG = "ogg"
    WEBVTT = "webvtt"
    SRT = "srt"


VIDEO_CONTAINERS = frozenset({Sniffed.MP4, Sniffed.MATROSKA, Sniffed.AVI, Sniffed.MPEGTS})
AUDIO_CONTAINERS = VIDEO_CONTAINERS | {
    Sniffed.WAV,
    Sniffed.MP3,
    Sniffed.AAC,
    Sniffed.FLAC,
    Sniffed.OGG,
}
SUBTITLE_FORMATS = frozenset({Sniffed.WEBVTT, Sniffed.SRT})
ACCEPTED: dict[UploadKind, frozenset[Sniffed]] = {
    UploadKind.PROGRAMME: VIDEO_CONTAINERS,
    UploadKind.AUDIO: AUDIO_CONTAINERS,
    UploadKind.SUBTITLES: SUBTITLE_FORMATS,
}

# Files people send by mistake, named so the refusal can say what was sent.
_KNOWN_OTHERS: tuple[tuple[bytes, int, str], ...] = (
    (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"PK\x05\x06", 0, "an empty ZIP archive"),
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG picture"),
    (b"\xff\xd8\xff", 0, "a JPEG picture"),
    (b"GIF87a", 0, "a GIF picture"),
    (b"GIF89a", 0, "a GIF picture"),
    (b"%PDF-", 0, "a PDF document"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", 0, "an old Microsoft Office document"),
)
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_SRT_START = re.compile(rb"^\s*\d+\s*\r?\n\s*\d{1,2}:\d{2}:\d{2}[,.]\d{3}\s*-->")


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """Where one chunk goes in the hash list, and whether it extends the file."""

    index: int  # its place in the list of chunk digests
    append: bool  # False: a chunk already stored, sent again; compared, never written


def plan_chunk(*, stored: int, offset: int, length: int, size: int, chunk_size: int) -> ChunkPlan:
    """Check one chunk against the upload's state; refuse a gap, a misfit or an oversize."""
    if offset < 0 or length < 0:
        raise ValidationError("Upload-Offset and the chunk length must not be negative.")
    if length > chunk_size:
        raise ValidationError(
            f"A chunk may carry at most {chunk_size} bytes; this one has {length}.",
            field="chunk",
        )
    if offset % chunk_size:
        raise ValidationError(
            f"Chunks start at multiples of {chunk_size} bytes; this one starts at {offset}.",
            field="chunk",
        )
    if offset > stored:
        # The client lost track (say a chunk answer was lost in another tab): tell it where.
        raise OffsetMismatchError(stored)
    if offset >= size:
        raise ValidationError(
            f"The chunk starts at byte {offset}, past the declared size of {size} bytes.",
            field="chunk",
        )
    expected = min(chunk_size, size - offset)
    if length != expected:
        raise ValidationError(
            f"The chunk at byte {offset} must carry {expected} bytes (every chunk is "
            f"{chunk_size} bytes, the last one what is left); this one has {length}.",
            field="chunk",
        )
    return ChunkPlan(index=offset // chunk_size, append=offset == stored)


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks a file of `size` bytes is sent in."""
    return -(-size // chunk_size)


def crc32c_digest(data: bytes | memoryview) -> bytes:
    """A chunk's CRC-32C as Upload-Checksum carries it: 4 bytes, big-endian."""
    return int(crc32c.crc32c(data)).to_bytes(4, "big")


def file_checksum(data: bytes) -> str:
    """The checksum of a whole file, as the server records it: its SHA-256 in hex."""
    return hashlib.sha256(data).hexdigest()


def parse_length(header: str | None) -> int:
    """Read a chunk's Content-Length: required, so a chunk's end is known before it starts."""
    if header is None or not header.strip().isdigit():
        raise ValidationError(
            "Send each chunk with a Content-Length header (a whole chunk, not a stream).",
            field="chunk",
        )
    return int(header.strip())


class OffsetMismatchError(ConflictError):
    """A chunk starts past the bytes stored; the client must resume from `offset`."""

    def __init__(self, offset: int) -> None:
        super().__init__(
            f"This chunk starts past the {offset} bytes received so far: resume from {offset}."
        )
        self.offset = offset


def parse_offset(header: str | None) -> int:
    """Read an Upload-Offset header: a non-negative decimal integer."""
    if header is None or not header.strip().isdigit():
        raise ValidationError("Upload-Offset must be a non-negative whole number of bytes.")
    return int(header.strip())


class ChunkAlgorithm(StrEnum):
    """How a client may checksum a chunk in Upload-Checksum."""

    CRC32C = "crc32c"
    SHA256 = "sha256"


DIGEST_SIZES = {ChunkAlgorithm.CRC32C: 4, ChunkAlgorithm.SHA256: 32}


@dataclass(frozen=True, slots=True)
class ChunkChecksum:
    """A chunk's checksum as its client declared it."""

    algorithm: ChunkAlgorithm
    digest: bytes


def parse_checksum(header: str | None) -> ChunkChecksum | None:
    """Read an Upload-Checksum header ("crc32c <base64>" or "sha256 <base64>"), or None."""
    if header is None or not header.strip():
        return None
    name, _, encoded = header.strip().partition(" ")
    try:
        algorithm = ChunkAlgorithm(name.lower())
    except ValueError:
        raise ValidationError(
            "Upload-Checksum must be 'crc32c <base64 of 4 bytes>' or 'sha256 <base64 digest>'."
        ) from None
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("Upload-Checksum is not valid base64.") from None
    size = DIGEST_SIZES[algorithm]
    if len(digest) != size:
        raise ValidationError(
            f"An Upload-Checksum of {algorithm} carries {size} bytes; this one has {len(digest)}."
        )
    return ChunkChecksum(algorithm, digest)


def validate_declaration(
    *, size: int, max_bytes: int, kind: str, language: str, checksum: str
) -> tuple[UploadKind, str, str]:
    """Check what a client declares when it creates an upload; return kind, language, checksum."""
    if size <= 0:
        raise ValidationError("The file is empty (0 bytes): choose your recording again.")
    if size > max_bytes:
        raise FileTooLargeError(size, max_bytes)
    try:
        upload_kind = UploadKind(kind)
    except ValueError:
        raise ValidationError("kind must be programme, audio or subtitles.", field="kind") from None
    language = language.strip()
    if upload_kind is not UploadKind.PROGRAMME and not re.match(
        r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$", language
    ):
        raise ValidationError(
            "Interpretation audio and subtitles need the language they are in, such as 'fr'.",
            field="language",
        )
    if upload_kind is UploadKind.PROGRAMME:
        language = ""
    checksum = checksum.strip().lower()
    if checksum and not SHA256_RE.match(checksum):
        raise ValidationError("checksum must be 64 hexadecimal digits.", field="checksum")
    return upload_kind, language, checksum


class FileTooLargeError(ValidationError):
    """A declared size past the cap."""

    status_code = 413

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(
            f"Your file is {human_bytes(size)}; the most we accept is {human_bytes(max_bytes)}. "
            "Export it at a lower bitrate and try again.",
            field="size",
        )


def human_bytes(count: int) -> str:
    """Bytes in the unit a person reads at a glance (1.5 GB, 800 MB, 12 KB)."""
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("bytes", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


def sniff(head: bytes) -> Sniffed | str:
    """Name the container in a file's first bytes, or describe the other thing they are."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return Sniffed.MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed.MATROSKA
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Sniffed.AVI
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Sniffed.WAV
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return Sniffed.MPEGTS
    if head.startswith(b"fLaC"):
        return Sniffed.FLAC
    if head.startswith(b"OggS"):
        return Sniffed.OGG
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        # ADTS AAC and MPEG audio share the 11-bit sync word; the layer bits tell them apart.
        return Sniffed.AAC if head[1] & 0x06 == 0 and not head.startswith(b"ID3") else Sniffed.MP3
    for magic, at, what in _KNOWN_OTHERS:
        if head[at : at + len(magic)] == magic:
            return what
    text = head.removeprefix(b"\xef\xbb\xbf").removeprefix(b"\xff\xfe").removeprefix(b"\xfe\xff")
    if text.startswith(b"WEBVTT"):
        return Sniffed.WEBVTT
    if _SRT_START.match(text):
        return Sniffed.SRT
    return "a file we do not recognise"


def accept_sniffed(kind: UploadKind, head: bytes) -> Sniffed:
    """Return the container of a first chunk if it fits the upload's kind, else say why not."""
    found = sniff(head)
    if isinstance(found, Sniffed) and found in ACCEPTED[kind]:
        return found
    wanted = {
        UploadKind.PROGRAMME: "a video (MP4, MOV, MKV, WebM, AVI or MPEG-TS)",
        UploadKind.AUDIO: "a sound or video file (MP4, M4A, WAV, MP3, FLAC, Ogg, MKV)",
        UploadKind.SUBTITLES: "a subtitle file (SRT or WebVTT)",
    }[kind]
    what = f"a {found} file" if isinstance(found, Sniffed) else found
    raise ValidationError(
        f"This is {what}, not {wanted}. Whatever its name says, its content decides: "
        f"please choose your recording itself.",
        field="file",
    )


def expires_at(now: datetime, expiry_s: float) -> datetime:
    """When a partial upload last touched at `now` may be deleted."""
    return now + timedelta(seconds=expiry_s)


def is_expired(state: UploadState, expires: datetime, now: datetime) -> bool:
    """True for an unfinished upload whose time has run out."""
    return state is UploadState.RECEIVING and expires <= now
