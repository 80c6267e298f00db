"""The records of the public attendance log: entries, header, signed tree heads, figures.

The line format itself is described in `summitcast.audit.log`; this module holds
the values each line carries and the exact bytes that are hashed and signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from summitcast.domain.attendance import (
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    Bucket,
    CountingRule,
    CountryRow,
    SessionFigures,
    SessionWindow,
)
from summitcast.errors import ValidationError

__all__ = [
    "LOG_FORMAT",
    "PSEUDONYM_SCHEME",
    "BucketRecord",
    "LogEntry",
    "LogHeader",
    "SignedTreeHead",
    "bucket_time",
    "canonical_json",
    "figures_from_dict",
    "figures_to_dict",
    "head_message",
    "iso_utc",
    "leaf_bytes",
    "leaf_hashes",
    "parse_time",
    "pseudonym",
]

LOG_FORMAT = "summitcast-attendance-log/1"
PSEUDONYM_SCHEME = "hex(HMAC-SHA256(audit_secret, utf8(location_id))[:16])"


def canonical_json(value: object) -> bytes:
    """Return the canonical bytes of a JSON value: sorted keys, no spaces, UTF-8.

    Our records hold only strings, integers, lists and objects, for which this
    coincides with RFC 8785 (JCS); floats are never written.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_bytes(bucket_start: int, pseudonym: str, country: str) -> bytes:
    """Return the Merkle leaf of one entry: canonical JSON of {bucket_start, country, pseudonym}."""
    # Same bytes as canonical_json({...}) for validated values, about 5x faster.
    return (
        f'{{"bucket_start":{bucket_start},"country":"{country}","pseudonym":"{pseudonym}"}}'
    ).encode()


def pseudonym(audit_secret: bytes, location_id: str) -> str:
    """Return the public pseudonym of a location under the summit's audit secret."""
    return hmac.new(audit_secret, location_id.encode(), hashlib.sha256).hexdigest()[:32]


def iso_utc(moment: datetime) -> str:
    """Return an aware datetime as ISO 8601 UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bucket_time(bucket_start: int) -> str:
    """Return a bucket start (epoch seconds) as a person reads it: 2024-07-17 12:00 UTC."""
    return datetime.fromtimestamp(bucket_start, UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(text: object, what: str) -> datetime:
    """Parse an ISO 8601 time written by `_iso`."""
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValidationError(f"{what} {text!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise ValidationError(f"{what} {text!r} has no time zone")
    return moment


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One present location in one bucket, as published."""

    pseudonym: str
    country: str


@dataclass(frozen=True, slots=True)
class BucketRecord:
    """One bucket line: its start and its entries sorted by pseudonym."""

    bucket_start: int
    entries: tuple[LogEntry, ...]

    def leaves(self) -> list[bytes]:
        """Return this bucket's Merkle leaves in log order."""
        start = self.bucket_start
        return [leaf_bytes(start, e.pseudonym, e.country) for e in self.entries]

    def as_bucket(self) -> Bucket:
        """Return the domain bucket keyed by pseudonym."""
        return Bucket(self.bucket_start, {e.pseudonym: e.country for e in self.entries})


@dataclass(frozen=True, slots=True)
class LogHeader:
    """First line of the log: what was counted, how, and who signs."""

    summit: str
    created: datetime
    rule: CountingRule
    sessions: tuple[SessionWindow, ...]
    public_key: bytes
    pseudonym_scheme: str = PSEUDONYM_SCHEME
    suppressed_country: str = SUPPRESSED_COUNTRY

    def to_record(self) -> dict[str, Any]:
        """Return the JSON object of the header line."""
        return {
            "type": "header",
            "format": LOG_FORMAT,
            "summit": self.summit,
            "created": iso_utc(self.created),
            "rule": asdict(self.rule),
            "sessions": [
                {"slug": s.slug, "start": iso_utc(s.start), "end": iso_utc(s.end)}
                for s in self.sessions
            ],
            "pseudonym_scheme": self.pseudonym_scheme,
            "suppressed_country": self.suppressed_country,
            "merkle_tree": "RFC 9162 SHA-256; leaf = canonical JSON of each entry, in log order",
            "public_key": base64.b64encode(self.public_key).decode(),
        }

    def digest(self) -> str:
        """Return the hex SHA-256 of the canonical header, which every head signs."""
        return hashlib.sha256(canonical_json(self.to_record())).hexdigest()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LogHeader:
        """Build a header from its JSON object, or raise ValidationError."""
        if record.get("format") != LOG_FORMAT:
            raise ValidationError(f"unknown log format {record.get('format')!r}")
        try:
            rule = CountingRule(**record["rule"])
            sessions = tuple(
                SessionWindow(
                    str(s["slug"]), parse_time(s["start"], "start"), parse_time(s["end"], "end")
                )
                for s in record["sessions"]
            )
            public_key = base64.b64decode(record["public_key"], validate=True)
            header = cls(
                summit=str(record["summit"]),
                created=parse_time(record["created"], "created"),
                rule=rule,
                sessions=sessions,
                public_key=public_key,
                pseudonym_scheme=str(record["pseudonym_scheme"]),
                suppressed_country=str(record["suppressed_country"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationError(f"header is incomplete or malformed: {error}") from error
        if len(public_key) != 32:
            raise ValidationError("header public key is not a 32-byte Ed25519 key")
        return header


def head_message(
    summit: str,
    header_sha256: str,
    tree_size: int,
    root_hash: bytes,
    timestamp: datetime,
    figures_sha256: str | None,
) -> bytes:
    """Return the exact bytes an Ed25519 tree-head signature covers.

    Text lines in the spirit of C2SP checkpoints: the header digest binds the
    rule and key, the figures digest (final head only) binds the published figures.
    """
    return (
        f"{LOG_FORMAT} tree head\n"
        f"summit {summit}\n"
        f"header {header_sha256}\n"
        f"size {tree_size}\n"
        f"root {root_hash.hex()}\n"
        f"time {iso_utc(timestamp)}\n"
        f"figures {figures_sha256 or '-'}\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A tree size and root signed by the organiser at a point in time."""

    summit: str
    header_sha256: str
    tree_size: int
    root_hash: bytes
    timestamp: datetime
    signature: bytes
    figures_sha256: str | None = None

    def message(self) -> bytes:
        """Return the signed bytes."""
        return head_message(
            self.summit,
            self.header_sha256,
            self.tree_size,
            self.root_hash,
            self.timestamp,
            self.figures_sha256,
        )

    def signature_valid(self, public_key: bytes) -> bool:
        """Return whether the signature verifies with this raw Ed25519 public key."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_record(self) -> dict[str, Any]:
        """Return the JSON object of a head (without summit and header digest)."""
        record: dict[str, Any] = {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": iso_utc(self.timestamp),
            "signature": base64.b64encode(self.signature).decode(),
        }
        if self.figures_sha256 is not None:
            record["figures_sha256"] = self.figures_sha256
        return record

    def to_json(self) -> dict[str, Any]:
        """Return a self-contained JSON object, as handed to a host with a proof."""
        return {"summit": self.summit, "header_sha256": self.header_sha256, **self.to_record()}

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], *, summit: str, header_sha256: str
    ) -> SignedTreeHead:
        """Build a head from its JSON object, or raise ValidationError."""
        try:
            tree_size = record["tree_size"]
            if not isinstance(tree_size, int) or tree_size < 0:
                raise ValueError("tree_size must be a non-negative integer")
            figures_sha256 = record.get("figures_sha256")
            return cls(
                summit=summit,
                header_sha256=header_sha256,
                tree_size=tree_size,
                root_hash=bytes.fromhex(record["root_hash"]),
                timestamp=parse_time(record["timestamp"], "timestamp"),
                signature=base64.b64decode(record["signature"], validate=True),
                figures_sha256=None if figures_sha256 is None else str(figures_sha256),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationError(f"tree head is incomplete or malformed: {error}") from error

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> SignedTreeHead:
        """Build a head from `to_json` output."""
        return cls.from_record(
            record, summit=str(record.get("summit")), header_sha256=str(record.get("header_sha256"))
        )


def figures_to_dict(figures: AttendanceFigures) -> dict[str, Any]:
    """Return the figures as a JSON object (tuples become lists)."""
    return json.loads(json.dumps(asdict(figures)))  # type: ignore[no-any-return]


def _rows(value: Any) -> tuple[CountryRow, ...]:
    return tuple(CountryRow(str(r["country"]), int(r["locations"])) for r in value)


def figures_from_dict(record: Mapping[str, Any]) -> AttendanceFigures:
    """Build figures from `figures_to_dict` output, or raise ValidationError."""
    try:
        data = dict(record)
        data["countries"] = _rows(data["countries"])
        data["concurrent"] = tuple((int(s), int(c)) for s, c in data["concurrent"])
        data["sessions"] = tuple(
            SessionFigures(**{**s, "countries": _rows(s["countries"])}) for s in data["sessions"]
        )
        return AttendanceFigures(**data)
    except (KeyError, TypeError, ValueError) as error:
        raise ValidationError(f"figures are incomplete or malformed: {error}") from error


def leaf_hashes(
    bucket_start: int, pseudonyms: Sequence[str], countries: Sequence[str]
) -> list[bytes]:
    """Return the Merkle leaf hashes of one bucket's entries, in log order."""
    sha = hashlib.sha256
    # "\x00" is the RFC 9162 leaf prefix; the rest is `leaf_bytes` inlined for speed.
    head = f'\x00{{"bucket_start":{bucket_start},"country":"'
    return [
        sha(f'{head}{c}","pseudonym":"{p}"}}'.encode()).digest()
        for p, c in zip(pseudonyms, countries, strict=True)
    ]
