"""A log kept open while the summit runs: buckets appended, heads signed at intervals.

Nothing written is ever rewritten.  Beside the log `<name>.jsonl` live:

* `<name>.jsonl.state`: a snapshot taken at the last signed head: the byte length
  of the log up to that head, the Merkle tree's compact nodes, the country shown
  for every pseudonym so far and the last bucket start (JSON).
* `<name>.jsonl.heads`: every head signed so far with its consistency proof from
  the previous one (JSON), which the public page lists.

The log is the truth and the snapshot a shortcut into it: opening reads the lines
after the snapshot's length back (buckets appended, or a head signed, just before a
crash), so appending resumes exactly where the file ends.  Each head record carries
the RFC 9162 consistency proof from the head before it, made from the old tree's
compact nodes and the leaves appended since (no need to re-read older entries).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from summitcast.audit.bucket_lines import BUCKET_PREFIX, parse_bucket_line
from summitcast.audit.log import BucketObserver, parse_record
from summitcast.audit.merkle import CompactTree, consistency_proof_from_compact
from summitcast.audit.records import (
    LogHeader,
    SignedTreeHead,
    canonical_json,
    figures_to_dict,
    head_message,
    leaf_hashes,
)
from summitcast.domain.attendance import (
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    AttendanceTally,
    CountingRule,
    SessionWindow,
)
from summitcast.errors import ConflictError, ValidationError

__all__ = ["LiveLog", "LiveLogBusyError", "PublishedHead", "read_heads", "snapshot_of"]

STATE_SUFFIX = ".state"
HEADS_SUFFIX = ".heads"
LOCK_SUFFIX = ".lock"


class LiveLogBusyError(ConflictError):
    """Another process is appending to this live log right now."""


@dataclass(frozen=True, slots=True)
class PublishedHead:
    """A signed head as the public page lists it, with its proof from the head before it."""

    head: SignedTreeHead
    previous_size: int
    consistency: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the head and its consistency proof as one JSON object (hashes in hex)."""
        return {
            **self.head.to_json(),
            "previous_size": self.previous_size,
            "consistency": [node.hex() for node in self.consistency],
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> PublishedHead:
        """Build one from `to_json` output, or raise ValidationError."""
        try:
            return cls(
                SignedTreeHead.from_json(record),
                int(record["previous_size"]),
                tuple(bytes.fromhex(node) for node in record["consistency"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationError(f"published head is malformed: {error!r}") from error


def read_heads(log_path: Path) -> list[PublishedHead]:
    """Return the heads a live log has signed so far (empty when it has none)."""
    try:
        records = json.loads(log_path.with_name(log_path.name + HEADS_SUFFIX).read_bytes())
    except FileNotFoundError:
        return []
    return [PublishedHead.from_json(record) for record in records]


def snapshot_of(log_path: Path) -> tuple[int, bool]:
    """Return (bytes covered by the last head, finished) of a live log, without the lock."""
    state = json.loads(log_path.with_name(log_path.name + STATE_SUFFIX).read_bytes())
    return int(state["length"]), bool(state["finished"])


def _line(record: Mapping[str, Any]) -> bytes:
    """Return a record as the writer spells it: compact JSON and a newline."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _replace(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a reader sees the old one or the new one)."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


@dataclass(slots=True)
class _Snapshot:
    """What the log was at its last head (or at its header, before any head)."""

    length: int
    size: int
    nodes: list[tuple[int, bytes]]
    last_start: int | None
    countries: dict[str, str]
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "size": self.size,
            "nodes": [[level, node.hex()] for level, node in self.nodes],
            "last_start": self.last_start,
            "countries": self.countries,
            "finished": self.finished,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> _Snapshot:
        return cls(
            int(record["length"]),
            int(record["size"]),
            [(int(level), bytes.fromhex(node)) for level, node in record["nodes"]],
            None if record["last_start"] is None else int(record["last_start"]),
            {str(k): str(v) for k, v in record["countries"].items()},
            bool(record["finished"]),
        )


@dataclass
class LiveLog:
    """An open live log: append buckets, sign heads, finish with the figures."""

    path: Path
    header: LogHeader
    snapshot: _Snapshot
    heads: list[PublishedHead]
    tree: CompactTree
    since_head: list[bytes] = field(default_factory=list)  # leaf hashes after the last head
    countries: dict[str, str] = field(default_factory=dict)  # pseudonym → country logged
    last_start: int | None = None
    length: int = 0

    @property
    def finished(self) -> bool:
        """Whether the figures record was written (nothing more may be appended)."""
        return self.snapshot.finished

    @property
    def rule(self) -> CountingRule:
        """The counting rule in the header."""
        return self.header.rule

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        summit: str,
        rule: CountingRule,
        sessions: Iterable[SessionWindow],
        signing_key: Ed25519PrivateKey,
        created: datetime,
    ) -> LiveLog:
        """Write the header of a new live log (refuses to overwrite one)."""
        public_key = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        header = LogHeader(summit, created, rule, tuple(sessions), public_key)
        line = _line(header.to_record())
        with path.open("xb") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        snapshot = _Snapshot(len(line), 0, [], None, {})
        log = cls(path, header, snapshot, [], CompactTree(), length=len(line))
        log._save()
        return log

    @classmethod
    def open(cls, path: Path) -> LiveLog:
        """Open a live log where its file ends, reading back what its snapshot lacks.

        Only under `locked`: reading back may cut off a line that a crash left half-written.
        """
        with path.open("rb") as handle:
            kind, record = parse_record(handle.readline().decode("utf-8"))
        if kind != "header":
            raise ValidationError(f"{path.name} does not start with a header")
        header = LogHeader.from_record(record)
        state = path.with_name(path.name + STATE_SUFFIX)
        snapshot = _Snapshot.from_json(json.loads(state.read_bytes()))
        log = cls(
            path,
            header,
            snapshot,
            read_heads(path),
            CompactTree.from_nodes(snapshot.size, snapshot.nodes),
            countries=dict(snapshot.countries),
            last_start=snapshot.last_start,
            length=snapshot.length,
        )
        log._catch_up()
        return log

    @staticmethod
    @contextlib.contextmanager
    def locked(path: Path) -> Iterator[None]:
        """Hold the log's lock, or raise LiveLogBusyError when another process holds it."""
        with path.with_name(path.name + LOCK_SUFFIX).open("a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise LiveLogBusyError("The live attendance log is being appended to.") from error
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Take in the lines after the snapshot (written before a crash saved it)."""
        with self.path.open("r+b") as handle:
            handle.seek(self.length)
            for line in handle:
                if not line.endswith(b"\n"):
                    # A line cut short by a crash was never a record: drop it, nothing else.
                    handle.truncate(self.length)
                    break
                if line.startswith(BUCKET_PREFIX):
                    start, pseudonyms, countries = parse_bucket_line(line)
                    self._take_bucket(start, pseudonyms, countries)
                else:
                    kind, record = parse_record(line.decode("utf-8"))
                    if kind == "head":
                        self._take_head(record, len(line))
                        continue
                    if kind == "figures":
                        self._take_head(record["head"], len(line), finished=True)
                        continue
                    raise ValidationError(f"a {kind} record inside a live log")
                self.length += len(line)

    def _take_bucket(self, start: int, pseudonyms: list[str], countries: list[str]) -> None:
        if self.last_start is not None and start <= self.last_start:
            raise ValidationError(f"bucket {start} does not come after {self.last_start}")
        for name, country in zip(pseudonyms, countries, strict=True):
            if self.countries.setdefault(name, country) != country:
                raise ValidationError(f"{name} is in {self.countries[name]} and in {country}")
        hashes = leaf_hashes(start, pseudonyms, countries)
        self.tree.append_hashes(hashes)
        self.since_head.extend(hashes)
        self.last_start = start

    def _take_head(
        self, record: Mapping[str, Any], line_length: int, finished: bool = False
    ) -> None:
        head = SignedTreeHead.from_record(
            record, summit=self.header.summit, header_sha256=self.header.digest()
        )
        if head.tree_size != self.tree.size or head.root_hash != self.tree.root():
            raise ValidationError("a head in the live log does not match its entries")
        # The heads file is saved before the snapshot: after a crash between the two
        # it already lists this head.
        if not self.heads or self.heads[-1].head != head:
            proof = tuple(bytes.fromhex(node) for node in record.get("consistency", []))
            self.heads.append(PublishedHead(head, self.snapshot.size, proof))
        self.length += line_length
        self._snap(finished)

    def _snap(self, finished: bool = False) -> None:
        """Take the snapshot at the current end (just after a head) and save it."""
        self.snapshot = _Snapshot(
            self.length,
            self.tree.size,
            self.tree.nodes(),
            self.last_start,
            dict(self.countries),
            finished,
        )
        self.since_head = []
        self._save()

    def _save(self) -> None:
        _replace(
            self.path.with_name(self.path.name + HEADS_SUFFIX),
            json.dumps([h.to_json() for h in self.heads], separators=(",", ":")).encode(),
        )
        _replace(
            self.path.with_name(self.path.name + STATE_SUFFIX),
            json.dumps(self.snapshot.to_json(), separators=(",", ":")).encode(),
        )

    def decide_countries(self, arriving: Mapping[str, str]) -> dict[str, str]:
        """Return the country to log for each pseudonym, fixing it for the arriving ones.

        `arriving` maps pseudonyms to their country ("ZZ" for hidden hosts).  A
        pseudonym keeps the country it was first logged with.  A country is shown
        for newcomers once at least k pseudonyms show it: either it already is, or
        at least k newcomers of it arrive together; otherwise they are logged as
        "ZZ" for good.  So no country is ever shown for fewer than k pseudonyms,
        and no pseudonym shows in one bucket what it hid in another.
        """
        shown = {c for c in self.countries.values() if c != SUPPRESSED_COUNTRY}
        new = {name: c for name, c in arriving.items() if name not in self.countries}
        newcomers: dict[str, int] = {}
        for country in new.values():
            newcomers[country] = newcomers.get(country, 0) + 1
        k = self.rule.k
        result = {name: self.countries[name] for name in arriving if name in self.countries}
        for name, country in new.items():
            keep = country != SUPPRESSED_COUNTRY and (country in shown or newcomers[country] >= k)
            result[name] = country if keep else SUPPRESSED_COUNTRY
        return result

    def append_bucket(self, start: int, entries: Mapping[str, str]) -> None:
        """Append one bucket (pseudonym → country, as `decide_countries` gave them)."""
        if self.finished:
            raise ValidationError("the live log is finished")
        if start % self.rule.bucket_seconds:
            raise ValidationError(f"bucket start {start} is not aligned to the bucket length")
        names = sorted(entries)
        countries = [entries[name] for name in names]
        self._take_bucket(start, names, countries)
        line = _line(
            {
                "type": "bucket",
                "bucket_start": start,
                "entries": [
                    {"pseudonym": name, "country": country}
                    for name, country in zip(names, countries, strict=True)
                ],
            }
        )
        self._write(line)

    def _write(self, line: bytes) -> None:
        with self.path.open("ab") as out:
            out.write(line)
        self.length += len(line)

    def _signed(
        self, key: Ed25519PrivateKey, clock: Callable[[], datetime], figures_sha256: str | None
    ) -> tuple[SignedTreeHead, list[bytes]]:
        timestamp = clock().replace(microsecond=0)
        if self.heads and timestamp < self.heads[-1].head.timestamp:
            timestamp = self.heads[-1].head.timestamp  # heads never go back in time
        digest = self.header.digest()
        root = self.tree.root()
        message = head_message(
            self.header.summit, digest, self.tree.size, root, timestamp, figures_sha256
        )
        head = SignedTreeHead(
            self.header.summit,
            digest,
            self.tree.size,
            root,
            timestamp,
            key.sign(message),
            figures_sha256,
        )
        previous = CompactTree.from_nodes(self.snapshot.size, self.snapshot.nodes)
        return head, consistency_proof_from_compact(previous, self.since_head)

    def sign_head(self, key: Ed25519PrivateKey, clock: Callable[[], datetime]) -> PublishedHead:
        """Sign the tree as it is now, with its consistency proof from the previous head."""
        if self.finished:
            raise ValidationError("the live log is finished")
        head, proof = self._signed(key, clock, None)
        published = PublishedHead(head, self.snapshot.size, tuple(proof))
        record = {"type": "head", **head.to_record(), "consistency": [p.hex() for p in proof]}
        self._write(_line(record))
        self._sync()
        self.heads.append(published)
        self._snap()
        return published

    def finish(
        self, figures: AttendanceFigures, key: Ed25519PrivateKey, clock: Callable[[], datetime]
    ) -> SignedTreeHead:
        """Write the figures record with the final head; nothing can be appended after it."""
        if self.finished:
            raise ValidationError("the live log is finished")
        record = figures_to_dict(figures)
        head, proof = self._signed(key, clock, hashlib.sha256(canonical_json(record)).hexdigest())
        self._write(
            _line(
                {
                    "type": "figures",
                    "figures": record,
                    "head": {**head.to_record(), "consistency": [p.hex() for p in proof]},
                }
            )
        )
        self._sync()
        self.heads.append(PublishedHead(head, self.snapshot.size, tuple(proof)))
        self._snap(finished=True)
        return head

    def replay(self, observer: BucketObserver | None = None) -> AttendanceFigures:
        """Read every bucket back: return the figures of the log, and show each to `observer`."""
        tally = AttendanceTally(self.header.sessions, self.rule)
        offset = position = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if offset >= self.length:
                    break
                if line.startswith(BUCKET_PREFIX):
                    start, names, countries = parse_bucket_line(line)
                    tally.add_columns(start, names, countries)
                    if observer is not None:
                        hashes = leaf_hashes(start, names, countries)
                        observer.bucket(start, offset, position, names, countries, hashes)
                    position += len(names)
                offset += len(line)
        return tally.figures()

    def _sync(self) -> None:
        # A head is public once written: the entries it signs must be on disk first.
        with self.path.open("rb") as handle:
            os.fsync(handle.fileno())
