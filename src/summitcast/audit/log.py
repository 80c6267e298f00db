"""The public attendance log: JSON Lines, one header, bucket and tree-head records, figures.

Format `summitcast-attendance-log/1`, UTF-8, one JSON object per line:

* line 1, `{"type": "header", ...}`: summit slug, counting rule, sessions,
  pseudonym scheme, suppressed-country code, Ed25519 public key (base64), created.
* `{"type": "bucket", "bucket_start": <epoch s>, "entries": [{"pseudonym", "country"}]}`
  in strictly increasing bucket order, entries sorted by pseudonym.  Each entry is
  one Merkle leaf: the canonical JSON of {bucket_start, country, pseudonym}.
* `{"type": "head", "tree_size", "root_hash" (hex), "timestamp", "signature"}`:
  a signed tree head over every leaf before it (see `head_message`).
* last line, `{"type": "figures", "figures": {...}, "head": {... "figures_sha256"}}`:
  the published figures and the final signed head, which also signs the figures.

Pseudonym = first 16 bytes of HMAC-SHA256(summit audit secret, location id), hex:
keyed, so nobody without the secret can link it to a location.  Country is "ZZ"
when the host is at risk or fewer than k locations of that country appear in
the whole log (decided once, so no entry reveals what another hides).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from summitcast.audit.merkle import CompactTree
from summitcast.audit.records import (
    LOG_FORMAT,
    PSEUDONYM_SCHEME,
    BucketRecord,
    LogEntry,
    LogHeader,
    SignedTreeHead,
    canonical_json,
    figures_from_dict,
    figures_to_dict,
    head_message,
    leaf_bytes,
    leaf_hashes,
    pseudonym,
)
from summitcast.domain.attendance import (
    AttendanceFigures,
    AttendanceTally,
    Bucket,
    CountingRule,
    LocationHeartbeats,
    SessionWindow,
    bucketize,
    public_countries,
)
from summitcast.errors import ImportFormatError, ValidationError

# The records (header, entries, heads, figures) live in summitcast.audit.records; they
# are named here too, so that a reader of the log needs one import.
__all__ = [
    "LOG_FORMAT",
    "PSEUDONYM_SCHEME",
    "AttendanceLog",
    "AttendanceLogWriter",
    "BucketRecord",
    "LogEntry",
    "LogHeader",
    "SignedTreeHead",
    "canonical_json",
    "figures_from_dict",
    "figures_to_dict",
    "head_message",
    "iter_lines",
    "leaf_bytes",
    "leaf_hashes",
    "parse_bucket",
    "parse_bucket_columns",
    "parse_record",
    "pseudonym",
    "read_log",
    "read_published_figures",
    "write_attendance_log",
    "write_attendance_log_from_buckets",
]

PSEUDONYM_RE = re.compile(r"[0-9a-f]{32}")
COUNTRY_RE = re.compile(r"[A-Z]{2}")
_HEX_RUN = re.compile(r"[0-9a-f]*")
_UPPER_RUN = re.compile(r"[A-Z]*")


def _check_entry(raw: Any) -> LogEntry:
    """Return an entry from its JSON object, or raise ValidationError."""
    if not isinstance(raw, dict) or set(raw) != {"pseudonym", "country"}:
        raise ValidationError(f"entry {raw!r} must have exactly pseudonym and country")
    pseudo, country = raw["pseudonym"], raw["country"]
    if not isinstance(pseudo, str) or not PSEUDONYM_RE.fullmatch(pseudo):
        raise ValidationError(f"pseudonym {pseudo!r} is not 32 lowercase hex digits")
    if not isinstance(country, str) or not COUNTRY_RE.fullmatch(country):
        raise ValidationError(f"country {country!r} is not a two-letter code")
    return LogEntry(pseudo, country)


def parse_record(line: str) -> tuple[str, dict[str, Any]]:
    """Return (type, object) of one log line, or raise ValidationError saying why."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValidationError(f"not valid JSON ({error.msg} at column {error.colno})") from error
    if not isinstance(record, dict) or record.get("type") not in {
        "header",
        "bucket",
        "head",
        "figures",
    }:
        raise ValidationError("not a header, bucket, head or figures record")
    return str(record["type"]), record


def parse_bucket_columns(record: Mapping[str, Any]) -> tuple[int, list[str], list[str]]:
    """Return (bucket_start, pseudonyms, countries) of a bucket object, checked in bulk.

    Checks whole columns with one regex each instead of entry by entry: verifying
    a 4-day log touches ~57 million entries, so per-entry Python work dominates.
    """
    start = record.get("bucket_start")
    raw_entries = record.get("entries")
    if not isinstance(start, int) or isinstance(start, bool):
        raise ValidationError("bucket_start must be an integer (epoch seconds)")
    if not isinstance(raw_entries, list):
        raise ValidationError("entries must be a list")
    try:
        if any(len(raw) != 2 for raw in raw_entries):
            raise KeyError("an entry")
        pseudonyms = [raw["pseudonym"] for raw in raw_entries]
        countries = [raw["country"] for raw in raw_entries]
        joined_pseudonyms = "".join(pseudonyms)
        joined_countries = "".join(countries)
    except (KeyError, TypeError) as error:
        bad = next(
            (
                r
                for r in raw_entries
                if not isinstance(r, dict) or set(r) != {"pseudonym", "country"}
            ),
            None,
        )
        raise ValidationError(
            f"entry {bad!r} must have exactly a pseudonym and a country (bucket {start})"
        ) from error
    n = len(raw_entries)
    # Fixed widths plus a character class over the joined column prove every item matches.
    if len(joined_pseudonyms) != 32 * n or not _HEX_RUN.fullmatch(joined_pseudonyms):
        bad_p = next(
            p for p in pseudonyms if not isinstance(p, str) or not PSEUDONYM_RE.fullmatch(p)
        )
        raise ValidationError(
            f"pseudonym {bad_p!r} is not 32 lowercase hex digits (bucket {start})"
        )
    if len(joined_countries) != 2 * n or not _UPPER_RUN.fullmatch(joined_countries):
        bad_c = next(c for c in countries if not isinstance(c, str) or not COUNTRY_RE.fullmatch(c))
        raise ValidationError(f"country {bad_c!r} is not a two-letter code (bucket {start})")
    if pseudonyms != sorted(pseudonyms) or len(set(pseudonyms)) != n:
        after = next(b for a, b in itertools.pairwise(pseudonyms) if a >= b)
        raise ValidationError(
            f"entries not strictly sorted by pseudonym at {after} (bucket {start})"
        )
    return start, pseudonyms, countries


def parse_bucket(record: Mapping[str, Any]) -> BucketRecord:
    """Return a bucket from its JSON object: entries well-formed and strictly sorted."""
    start, pseudonyms, countries = parse_bucket_columns(record)
    entries = tuple(LogEntry(p, c) for p, c in zip(pseudonyms, countries, strict=True))
    return BucketRecord(start, entries)


@dataclass(frozen=True, slots=True)
class AttendanceLog:
    """A whole log read into memory (tests, proofs); `verify_log` streams instead."""

    header: LogHeader
    buckets: tuple[BucketRecord, ...]
    heads: tuple[SignedTreeHead, ...]
    figures: AttendanceFigures
    final_head: SignedTreeHead


def iter_lines(source: str | Path | Iterable[str]) -> Iterator[str]:
    """Yield the lines of a path or pass an iterable of lines through."""
    if isinstance(source, str | Path):
        with Path(source).open(encoding="utf-8") as handle:
            yield from handle
    else:
        yield from source


def read_log(source: str | Path | Iterable[str]) -> AttendanceLog:
    """Read a well-formed log, raising ImportFormatError with the line number otherwise.

    This checks structure only; `verify_log` checks hashes, signatures and figures.
    """
    header: LogHeader | None = None
    buckets: list[BucketRecord] = []
    heads: list[SignedTreeHead] = []
    final: tuple[AttendanceFigures, SignedTreeHead] | None = None
    lineno = 0
    for lineno, line in enumerate(iter_lines(source), start=1):
        try:
            kind, record = parse_record(line)
            if final is not None:
                raise ValidationError("record after the final figures record")
            if (kind == "header") != (lineno == 1):
                raise ValidationError("the header must be the first line and only there")
            if kind == "header":
                header = LogHeader.from_record(record)
                continue
            assert header is not None  # line 1 was a header, or we raised above
            if kind == "bucket":
                buckets.append(parse_bucket(record))
            elif kind == "head":
                heads.append(
                    SignedTreeHead.from_record(
                        record, summit=header.summit, header_sha256=header.digest()
                    )
                )
            else:
                final = (
                    figures_from_dict(record["figures"]),
                    SignedTreeHead.from_record(
                        record["head"], summit=header.summit, header_sha256=header.digest()
                    ),
                )
        except (ValidationError, KeyError, TypeError) as error:
            message = error.message if isinstance(error, ValidationError) else repr(error)
            raise ImportFormatError(f"line {lineno}: {message}") from error
    if header is None:
        raise ImportFormatError("the log is empty")
    if final is None:
        raise ImportFormatError(f"the log ends at line {lineno} without its figures record")
    return AttendanceLog(header, tuple(buckets), tuple(heads), final[0], final[1])


def _last_line(path: Path) -> str:
    """Return the last line of a file without reading the rest (logs reach gigabytes)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()
        block = 1 << 16
        data = b""
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            data = handle.read(end - start) + data
            lines = data.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2 or start == 0:
                return lines[-1].decode("utf-8")
            end = start
    return ""


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.readline().decode("utf-8")


def read_published_figures(path: Path) -> tuple[LogHeader, AttendanceFigures]:
    """Return a finished log's header and published figures, reading only its first and last line.

    Nothing is verified (`verify_log` does that); raises ImportFormatError naming the file.
    """
    try:
        kind, header_record = parse_record(_first_line(path))
        header = LogHeader.from_record(header_record)
        last_kind, last = parse_record(_last_line(path))
        if kind != "header" or last_kind != "figures":
            raise ValidationError("not a finished attendance log (header … figures)")
        figures = figures_from_dict(last["figures"])
    except ValidationError as error:
        raise ImportFormatError(f"{path}: {error.message}") from error
    return header, figures


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BucketObserver(Protocol):
    """Told about every bucket line as it is written (the log index listens)."""

    def bucket(
        self,
        start: int,
        offset: int,
        position: int,
        pseudonyms: Sequence[str],
        countries: Sequence[str],
        hashes: Sequence[bytes],
    ) -> None:
        """Take one bucket: its byte offset, first leaf index, columns and leaf hashes."""


class AttendanceLogWriter:
    """Writes a log line by line: header now, then buckets, signed heads and the figures."""

    def __init__(
        self,
        out: TextIO,
        *,
        summit: str,
        rule: CountingRule,
        sessions: Sequence[SessionWindow],
        signing_key: Ed25519PrivateKey,
        clock: Callable[[], datetime] = _utc_now,
        observer: BucketObserver | None = None,
    ) -> None:
        """Write the header line."""
        self._out = out
        self._observer = observer
        self._offset = 0  # bytes written so far: where the next line starts
        self._key = signing_key
        self._clock = clock
        public_key = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.header = LogHeader(summit, clock(), rule, tuple(sessions), public_key)
        self._header_sha256 = self.header.digest()
        self._tree = CompactTree()
        self._tally = AttendanceTally(sessions, rule)
        self._last_start: int | None = None
        self._finished = False
        self._write(self.header.to_record())

    @property
    def tree_size(self) -> int:
        """Number of entries (leaves) written so far."""
        return self._tree.size

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._out.write(line)
        if self._observer is not None:
            self._offset += len(line.encode("utf-8"))

    def append_bucket(self, bucket_start: int, entries: Iterable[LogEntry]) -> int:
        """Append one bucket (entries in any order) and return the new tree size."""
        if self._finished:
            raise ValidationError("the log is finished")
        if self._last_start is not None and bucket_start <= self._last_start:
            raise ValidationError(f"bucket {bucket_start} does not come after {self._last_start}")
        ordered = sorted(entries, key=lambda e: e.pseudonym)
        record = BucketRecord(bucket_start, tuple(ordered))
        self._tally.add(record.as_bucket())  # validates alignment and country consistency
        pseudonyms = [e.pseudonym for e in ordered]
        countries = [e.country for e in ordered]
        hashes = leaf_hashes(bucket_start, pseudonyms, countries)
        if self._observer is not None:
            self._observer.bucket(
                bucket_start, self._offset, self._tree.size, pseudonyms, countries, hashes
            )
        self._tree.append_hashes(hashes)
        self._last_start = bucket_start
        self._write(
            {
                "type": "bucket",
                "bucket_start": bucket_start,
                "entries": [{"pseudonym": e.pseudonym, "country": e.country} for e in ordered],
            }
        )
        return self._tree.size

    def _signed_head(self, figures_sha256: str | None) -> SignedTreeHead:
        timestamp = self._clock().replace(microsecond=0)
        root_hash = self._tree.root()
        message = head_message(
            self.header.summit,
            self._header_sha256,
            self._tree.size,
            root_hash,
            timestamp,
            figures_sha256,
        )
        return SignedTreeHead(
            self.header.summit,
            self._header_sha256,
            self._tree.size,
            root_hash,
            timestamp,
            self._key.sign(message),
            figures_sha256,
        )

    def sign_head(self) -> SignedTreeHead:
        """Sign the current tree head and write it as a head record."""
        if self._finished:
            raise ValidationError("the log is finished")
        head = self._signed_head(None)
        self._write({"type": "head", **head.to_record()})
        return head

    def finish(self) -> tuple[AttendanceFigures, SignedTreeHead]:
        """Compute the figures from what was written, sign them with the final head, write."""
        if self._finished:
            raise ValidationError("the log is finished")
        figures = self._tally.figures()
        figures_record = figures_to_dict(figures)
        head = self._signed_head(hashlib.sha256(canonical_json(figures_record)).hexdigest())
        self._write({"type": "figures", "figures": figures_record, "head": head.to_record()})
        self._finished = True
        return figures, head


def write_attendance_log(
    out: TextIO,
    *,
    summit: str,
    locations: Sequence[LocationHeartbeats],
    sessions: Sequence[SessionWindow],
    rule: CountingRule,
    audit_secret: bytes,
    signing_key: Ed25519PrivateKey,
    clock: Callable[[], datetime] = _utc_now,
    head_every: int = 12,
) -> tuple[AttendanceFigures, SignedTreeHead]:
    """Count the heartbeats, write the whole log and return the figures and final head.

    A head is signed every `head_every` buckets (12 = hourly at 5 minutes).
    """
    hidden = frozenset(loc.location_id for loc in locations if loc.privacy == "hidden")
    return write_attendance_log_from_buckets(
        out,
        summit=summit,
        buckets=bucketize(locations, sessions, rule),
        hidden=hidden,
        sessions=sessions,
        rule=rule,
        audit_secret=audit_secret,
        signing_key=signing_key,
        clock=clock,
        head_every=head_every,
    )


def write_attendance_log_from_buckets(
    out: TextIO,
    *,
    summit: str,
    buckets: Sequence[Bucket],
    hidden: frozenset[str],
    sessions: Sequence[SessionWindow],
    rule: CountingRule,
    audit_secret: bytes,
    signing_key: Ed25519PrivateKey,
    clock: Callable[[], datetime] = _utc_now,
    head_every: int = 12,
    progress: Callable[[int, int], None] | None = None,
    country: Mapping[str, str] | None = None,
    observer: BucketObserver | None = None,
) -> tuple[AttendanceFigures, SignedTreeHead]:
    """Write the log of buckets keyed by location id (hidden ids are logged as "ZZ")."""
    # A caller that already knows the publishable countries spares a pass over the buckets.
    if country is None:
        country = public_countries(buckets, hidden, rule.k)
    pseudonyms = {key: pseudonym(audit_secret, key) for key in country}
    writer = AttendanceLogWriter(
        out,
        summit=summit,
        rule=rule,
        sessions=sessions,
        signing_key=signing_key,
        clock=clock,
        observer=observer,
    )
    for index, bucket in enumerate(buckets, start=1):
        writer.append_bucket(
            bucket.start, (LogEntry(pseudonyms[key], country[key]) for key in bucket.present)
        )
        if index % head_every == 0:
            writer.sign_head()
        if progress is not None:
            progress(index, len(buckets))
    return writer.finish()
