"""Verify a public attendance log end to end; check heads published during the event."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from summitcast.audit.bucket_lines import (
    BUCKET_PREFIX,
    HashedBucket,
    bucket_start_of,
    parse_bucket_line,
)
from summitcast.audit.dispatch import (
    BucketDispatcher,
    LogLine,
    Progress,
    TallySpec,
    default_workers,
    log_lines,
)
from summitcast.audit.live import PublishedHead
from summitcast.audit.log import parse_record
from summitcast.audit.merkle import EMPTY_ROOT, CompactTree, verify_consistency
from summitcast.audit.records import (
    LogHeader,
    SignedTreeHead,
    bucket_time,
    canonical_json,
    figures_from_dict,
    leaf_hashes,
)
from summitcast.domain.attendance import (
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    AttendanceTally,
    SessionFigures,
)
from summitcast.errors import ValidationError

__all__ = ["VerificationReport", "check_published_heads", "verify_log"]

MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """Outcome of `verify_log`: ok only when `problems` is empty."""

    ok: bool
    problems: list[str]
    figures: AttendanceFigures | None
    tree_size: int = 0
    heads_checked: int = 0
    header: LogHeader | None = None
    final_head: SignedTreeHead | None = None
    head_roots: dict[int, bytes] = dataclasses.field(default_factory=dict)  # size → root


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _compare_figures(published: AttendanceFigures, recomputed: AttendanceFigures) -> list[str]:
    """Return one sentence per published figure that the entries do not give."""
    problems = []
    for field in dataclasses.fields(AttendanceFigures):
        name = field.name
        mine, theirs = getattr(recomputed, name), getattr(published, name)
        if mine == theirs:
            continue
        if name == "sessions":
            problems.extend(_compare_sessions(theirs, mine))
        elif name == "concurrent":
            mine_map, theirs_map = dict(mine), dict(theirs)
            for start in sorted(set(mine_map) | set(theirs_map)):
                if mine_map.get(start) != theirs_map.get(start):
                    problems.append(
                        f"published figure concurrent at {bucket_time(start)} is "
                        f"{theirs_map.get(start)} but the entries give {mine_map.get(start)}"
                    )
        else:
            problems.append(f"published figure {name} is {theirs!r} but the entries give {mine!r}")
    return problems


def _compare_sessions(
    published: tuple[SessionFigures, ...], recomputed: tuple[SessionFigures, ...]
) -> list[str]:
    if [s.slug for s in published] != [s.slug for s in recomputed]:
        return ["published figure sessions names other sessions than the header"]
    problems = []
    for theirs, mine in zip(published, recomputed, strict=True):
        for field in dataclasses.fields(SessionFigures):
            a, b = getattr(theirs, field.name), getattr(mine, field.name)
            if a != b:
                problems.append(
                    f"published figure sessions[{mine.slug}].{field.name} is {a!r} "
                    f"but the entries give {b!r}"
                )
    return problems


class _Verifier:
    """State of one streaming pass over a log."""

    def __init__(self, expected_public_key: bytes | None) -> None:
        self.expected_public_key = expected_public_key
        self.problems: list[str] = []
        self.header: LogHeader | None = None
        self.header_sha256 = ""
        self.tree = CompactTree()
        self.tally: AttendanceTally | None = None
        self.last_bucket: tuple[int, int] | None = None  # (bucket_start, line)
        self.last_head: tuple[SignedTreeHead, int] | None = None
        self.head_roots: dict[int, bytes] = {}
        self.heads_checked = 0
        self.final_head: SignedTreeHead | None = None
        self.figures: AttendanceFigures | None = None
        self.final_line = 0

    def problem(self, lineno: int, message: str) -> None:
        self.problems.append(f"line {lineno}: {message}" if lineno else message)

    def header_line(self, lineno: int, kind: str, record: dict[str, Any]) -> bool:
        """Check line 1; return False when nothing else can be checked."""
        if kind != "header":
            self.problem(lineno, "the log does not start with a header record")
            return False
        try:
            self.header = LogHeader.from_record(record)
        except ValidationError as error:
            self.problem(lineno, error.message)
            return False
        self.header_sha256 = self.header.digest()
        self.tally = AttendanceTally(self.header.sessions, self.header.rule)
        key = self.header.public_key
        if self.expected_public_key is not None and key != self.expected_public_key:
            self.problem(
                lineno,
                f"the log's public key {_b64(key)} is not the expected key "
                f"{_b64(self.expected_public_key)}: it was signed by someone else",
            )
        return True

    def tally_spec(self) -> TallySpec:
        """Return what a worker needs to tally buckets as this log's header says."""
        assert self.header is not None
        return tuple(self.header.sessions), self.header.rule

    def bucket_order(self, lineno: int, start: int) -> str:
        """Note a bucket's place; return why it is out of order ("" when it is in order)."""
        if self.last_bucket is not None and start <= self.last_bucket[0]:
            return (
                f"bucket {start} ({bucket_time(start)}) is out of order: it does not come after "
                f"bucket {self.last_bucket[0]} on line {self.last_bucket[1]}"
            )
        self.last_bucket = (start, lineno)
        return ""

    def bucket_hashed(
        self, lineno: int, hashed: HashedBucket | str, order: str | None, line: LogLine
    ) -> None:
        """Take in one bucket line parsed (and maybe tallied) by `hash_bucket_line`.

        `order` is the verdict of `bucket_order` given when the line was sent, or None
        when its start could not be read then (a line spelt unlike our writer's).
        """
        assert self.tally is not None
        if isinstance(hashed, str):
            self.problem(lineno, hashed)
            return
        start = hashed.start
        if order is None:
            order = self.bucket_order(lineno, start)
        if order:
            self.problem(lineno, order)
        # The entries are in the tree whatever their order: the roots must say so.
        if hashed.position == self.tree.size:
            for level, node in hashed.subtrees:
                self.tree.append_subtree(level, node)
        else:
            # A worker guessed the position wrong (an earlier line was malformed).
            _, pseudonyms, countries = parse_bucket_line(line.whole())
            self.tree.append_hashes(leaf_hashes(start, pseudonyms, countries))
        if hashed.tallied:
            if hashed.tally_problem:
                self.problem(lineno, hashed.tally_problem)
        elif not order:
            try:
                self.tally.add_columns(start, *hashed.columns())
            except ValidationError as error:
                self.problem(lineno, error.message)

    def absorb(self, lineno: int, partial: list[AttendanceTally]) -> None:
        """Merge the workers' partial tallies into this one."""
        assert self.tally is not None
        for tally in partial:
            for message in self.tally.merge(tally):
                self.problem(lineno, message)

    def check_consistency(
        self, lineno: int, head: SignedTreeHead, what: str, proof: object
    ) -> None:
        """Check the RFC 9162 consistency proof a live log's head carries from the head before."""
        if proof is None:
            return  # logs written whole carry none: their heads are checked by their roots
        try:
            if not isinstance(proof, list):
                raise TypeError("not a list")
            path = [bytes.fromhex(node) for node in proof]
        except (TypeError, ValueError) as error:
            self.problem(
                lineno,
                f"{what} (size {head.tree_size}) has a malformed consistency proof ({error})",
            )
            return
        if self.last_head is None:
            old_size, old_root, since = 0, EMPTY_ROOT, "the empty tree"
        else:
            previous, previous_line = self.last_head
            old_size, old_root = previous.tree_size, previous.root_hash
            since = f"the head on line {previous_line} (size {old_size})"
        if old_size > head.tree_size or not verify_consistency(
            old_size, head.tree_size, old_root, head.root_hash, path
        ):
            self.problem(
                lineno,
                f"{what} (size {head.tree_size}): its consistency proof from {since} does not "
                "verify: the log was rewritten between the two heads",
            )

    def check_head(
        self, lineno: int, head: SignedTreeHead, what: str, proof: object = None
    ) -> None:
        assert self.header is not None
        self.heads_checked += 1
        self.head_roots.setdefault(head.tree_size, head.root_hash)
        self.check_consistency(lineno, head, what, proof)
        if head.tree_size != self.tree.size:
            self.problem(
                lineno,
                f"{what} signs {head.tree_size} entries but {self.tree.size} entries precede it: "
                "entries were added or removed after signing",
            )
        elif head.root_hash != self.tree.root():
            self.problem(
                lineno,
                f"{what} root {head.root_hash.hex()} does not match the root recomputed from the "
                f"entries ({self.tree.root().hex()}): entries were changed after signing",
            )
        if not head.signature_valid(self.header.public_key):
            self.problem(
                lineno,
                f"{what} (size {head.tree_size}) has a signature that does not verify with "
                "the log's public key",
            )
        if self.last_head is not None:
            previous, previous_line = self.last_head
            # Both roots were recomputed from one sequence of entries, so a head that
            # matches is consistent with every earlier one; only order can still be wrong.
            if head.tree_size < previous.tree_size or head.timestamp < previous.timestamp:
                self.problem(
                    lineno,
                    f"{what} (size {head.tree_size}, {head.timestamp.isoformat()}) goes back "
                    f"behind the head on line {previous_line}",
                )
        self.last_head = (head, lineno)

    def head_line(self, lineno: int, record: dict[str, Any]) -> None:
        assert self.header is not None
        try:
            head = SignedTreeHead.from_record(
                record, summit=self.header.summit, header_sha256=self.header_sha256
            )
        except ValidationError as error:
            self.problem(lineno, error.message)
            return
        self.check_head(lineno, head, "tree head", record.get("consistency"))

    def figures_line(self, lineno: int, record: dict[str, Any]) -> None:
        assert self.header is not None
        self.final_line = lineno
        try:
            published = figures_from_dict(record["figures"])
            head = SignedTreeHead.from_record(
                record["head"], summit=self.header.summit, header_sha256=self.header_sha256
            )
        except (ValidationError, KeyError, TypeError) as error:
            message = error.message if isinstance(error, ValidationError) else repr(error)
            self.problem(lineno, f"figures record is malformed: {message}")
            return
        self.final_head = head
        self.check_head(lineno, head, "final tree head", record["head"].get("consistency"))
        digest = hashlib.sha256(canonical_json(record["figures"])).hexdigest()
        if head.figures_sha256 != digest:
            self.problem(
                lineno,
                "the final tree head does not sign these figures: they were edited after signing",
            )
        assert self.tally is not None
        self.figures = self.tally.figures()
        for message in _compare_figures(published, self.figures):
            self.problem(lineno, message)

    def finish(self, last_line: int, *, unfinished_ok: bool = False) -> None:
        assert self.header is not None
        assert self.tally is not None
        k = self.header.rule.k
        sizes = Counter(self.tally.country_by_key().values())
        for country, members in sorted(sizes.items()):
            if country != SUPPRESSED_COUNTRY and members < k:
                self.problem(
                    0,
                    f"country {country} is shown for {members} pseudonyms, fewer than "
                    f"k={k}: the log should have suppressed it",
                )
        if not self.final_line and not unfinished_ok:
            self.problem(
                0,
                f"the log ends at line {last_line} without its figures record: "
                "it is truncated or unfinished",
            )

    def report(self) -> VerificationReport:
        """Return the outcome so far, with at most MAX_PROBLEMS problems spelt out."""
        problems = self.problems
        if len(problems) > MAX_PROBLEMS:
            more = len(problems) - MAX_PROBLEMS
            problems = [*problems[:MAX_PROBLEMS], f"… and {more} more problems"]
        return VerificationReport(
            ok=not problems,
            problems=problems,
            figures=self.figures,
            tree_size=self.tree.size,
            heads_checked=self.heads_checked,
            header=self.header,
            final_head=self.final_head,
            head_roots=self.head_roots,
        )


def verify_log(
    source: str | Path | Iterable[str],
    expected_public_key: bytes | None = None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    live: bool = False,
) -> VerificationReport:
    """Re-check a whole log: order, Merkle roots, signatures, key and every published figure.

    `progress(done, total)` is called per line with bytes read (total is the file
    size, or None for an iterable of lines).  `workers` processes parse and hash
    bucket lines (default: 2 for a large file on a machine with 2+ cores, else 0).
    `live` accepts a log still being published (no figures record yet): its
    entries and heads are checked all the same.
    """
    verifier = _Verifier(expected_public_key)
    path = source if isinstance(source, str | Path) else None
    dispatcher = BucketDispatcher(default_workers(source) if workers is None else workers, path)
    # Lines still in flight at the end of the file may need their bytes again.
    stack = contextlib.ExitStack()
    try:
        lineno = _read_through(verifier, dispatcher, log_lines(source, progress, stack))
    finally:
        dispatcher.close()
        stack.close()
    if lineno == 0:
        verifier.problem(0, "the log is empty")
    elif verifier.header is not None:
        verifier.finish(lineno, unfinished_ok=live)
    return verifier.report()


def _read_through(
    verifier: _Verifier, dispatcher: BucketDispatcher, lines: Iterator[LogLine]
) -> int:
    """Check every line in order; return the number of the last line read (0 when none)."""
    lineno = 0
    for lineno, line in enumerate(lines, start=1):
        if lineno > 1 and line.head.startswith(BUCKET_PREFIX) and verifier.header is not None:
            _bucket_line(verifier, dispatcher, lineno, line)
        elif not _record_line(verifier, dispatcher, lineno, line):
            break
    for done in dispatcher.ready(drain=True):
        verifier.bucket_hashed(*done)
    if verifier.header is not None:
        verifier.absorb(0, dispatcher.collect())
    return lineno


def _bucket_line(
    verifier: _Verifier, dispatcher: BucketDispatcher, lineno: int, line: LogLine
) -> None:
    """Send a bucket line as our writer spells it to a worker; take in the answers due."""
    if verifier.final_line:
        verifier.problem(lineno, "record after the final figures record")
    start = bucket_start_of(line.head)
    # Order is decided here, so the worker that parses an in-order line can
    # also count it; a line whose start cannot be read yet is decided later.
    order = None if start is None else verifier.bucket_order(lineno, start)
    spec = verifier.tally_spec() if order == "" else None
    dispatcher.submit(lineno, line, spec, order)
    for done in dispatcher.ready():
        verifier.bucket_hashed(*done)


def _record_line(
    verifier: _Verifier, dispatcher: BucketDispatcher, lineno: int, line: LogLine
) -> bool:
    """Check any other line; return False when the header is unreadable (nothing else can be)."""
    # Any other record depends on every bucket before it.
    for done in dispatcher.ready(drain=True):
        verifier.bucket_hashed(*done)
    try:
        kind, record = parse_record(line.whole().decode("utf-8", "replace"))
    except ValidationError as error:
        if lineno == 1:
            verifier.problem(1, f"{error.message}; cannot read the header")
            return False
        verifier.problem(lineno, error.message)
        return True
    if lineno == 1:
        return verifier.header_line(lineno, kind, record)
    if verifier.final_line:
        verifier.problem(lineno, "record after the final figures record")
    if kind == "bucket":
        # Same JSON, spelt differently from our writer: the general path.
        dispatcher.submit(lineno, line, None)
        for done in dispatcher.ready(drain=True):
            verifier.bucket_hashed(*done)
    elif kind == "head":
        verifier.head_line(lineno, record)
    elif kind == "figures":
        verifier.absorb(lineno, dispatcher.collect())
        verifier.figures_line(lineno, record)
    else:
        verifier.problem(lineno, "a second header record")
    return True


def check_published_heads(report: VerificationReport, heads: Sequence[PublishedHead]) -> list[str]:
    """Return why heads published during the event (heads.json) do not chain into this log.

    Each must verify with the log's key, prove its consistency from the one before
    it, and be one of the log's own heads (same size, same root): then the log
    was not rewritten after any of them was published.
    """
    problems: list[str] = []
    key = report.header.public_key if report.header is not None else None
    previous: SignedTreeHead | None = None
    for number, published in enumerate(heads, start=1):
        head = published.head
        what = f"published head {number} (size {head.tree_size}, {head.timestamp.isoformat()})"
        if key is not None and not head.signature_valid(key):
            problems.append(f"{what} has a signature that does not verify with the log's key")
        old_size = 0 if previous is None else previous.tree_size
        old_root = EMPTY_ROOT if previous is None else previous.root_hash
        if published.previous_size != old_size or not verify_consistency(
            old_size, head.tree_size, old_root, head.root_hash, published.consistency
        ):
            problems.append(
                f"{what}: its consistency proof from the head before it (size {old_size}) "
                "does not verify"
            )
        logged = report.head_roots.get(head.tree_size)
        if logged is None:
            problems.append(
                f"{what} is not among the log's heads: the log is not the one it was signed for"
            )
        elif logged != head.root_hash:
            problems.append(
                f"{what} has root {head.root_hash.hex()} but the log's head of that size has "
                f"root {logged.hex()}: the log was rewritten after the head was published"
            )
        previous = head
    return problems
