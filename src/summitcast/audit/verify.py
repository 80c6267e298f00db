"""Verify a public attendance log end to end, and prove or check one host's inclusion."""

from __future__ import annotations

import base64
import bisect
import collections
import contextlib
import dataclasses
import hashlib
import mmap
import multiprocessing
import os
import queue
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from summitcast.audit.bucket_lines import (
    BUCKET_PREFIX,
    HashedBucket,
    bucket_start_of,
    entries_by_length,
    expected_entries,
    hash_bucket_line,
    parse_bucket_line,
)
from summitcast.audit.live import PublishedHead
from summitcast.audit.log import (
    AttendanceLog,
    LogHeader,
    SignedTreeHead,
    canonical_json,
    figures_from_dict,
    leaf_bytes,
    leaf_hashes,
    parse_record,
)
from summitcast.audit.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof_from_hashes,
    inclusion_proof_from_batches,
    verify_consistency,
    verify_inclusion,
)
from summitcast.audit.tally import ColumnTally
from summitcast.domain.attendance import (
    SUPPRESSED_COUNTRY,
    AttendanceFigures,
    AttendanceTally,
    CountingRule,
    SessionFigures,
    SessionWindow,
)
from summitcast.errors import NotFoundError, ValidationError

__all__ = [
    "InclusionProof",
    "ProofCheck",
    "VerificationReport",
    "check_published_heads",
    "check_saved_head",
    "inclusion_proof_for",
    "verify_inclusion_proof",
    "verify_log",
]

MAX_PROBLEMS = 100
Progress = Callable[[int, int | None], None]


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


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """Outcome of checking one proof, with a sentence for a person."""

    ok: bool
    message: str


def _when(bucket_start: int) -> str:
    return datetime.fromtimestamp(bucket_start, UTC).strftime("%Y-%m-%d %H:%M UTC")


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
                        f"published figure concurrent at {_when(start)} is "
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
                f"bucket {start} ({_when(start)}) is out of order: it does not come after "
                f"bucket {self.last_bucket[0]} on line {self.last_bucket[1]}"
            )
        self.last_bucket = (start, lineno)
        return ""

    def bucket_hashed(
        self, lineno: int, hashed: HashedBucket | str, order: str | None, line: _Line
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


# Enough of a line to read a bucket's start, and of its end to see how it closes.
_LINE_HEAD = 128
_LINE_TAIL = 4


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of the log: where it lies in the file, and its first bytes.

    Bucket lines of a file are not read by the main process at all: workers read
    their byte range themselves, so a 3.7 GB log is not copied through pipes.
    """

    head: bytes  # the whole line when `mapped` is None, else its first bytes
    tail: bytes
    offset: int
    length: int
    mapped: mmap.mmap | None = None

    def whole(self) -> bytes:
        """Return all the bytes of the line."""
        if self.mapped is None:
            return self.head
        return self.mapped[self.offset : self.offset + self.length]


def _file_lines(path: Path, stack: contextlib.ExitStack) -> Iterator[_Line]:
    """Yield the lines of a file, mapped until `stack` closes (after the last result is in)."""
    handle = stack.enter_context(path.open("rb"))
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        return  # mmap refuses an empty file
    mapped = stack.enter_context(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    offset = 0
    while offset < size:
        end = mapped.find(b"\n", offset)  # memchr: the only pass over every byte
        end = size if end < 0 else end + 1
        head = mapped[offset : min(end, offset + _LINE_HEAD)]
        tail = mapped[max(offset, end - _LINE_TAIL) : end]
        yield _Line(head, tail, offset, end - offset, mapped)
        offset = end


def _lines(
    source: str | Path | Iterable[str], progress: Progress | None, stack: contextlib.ExitStack
) -> Iterator[_Line]:
    """Yield the lines of a file (progress in bytes) or of an iterable of strings."""
    if isinstance(source, str | Path):
        path = Path(source)
        total = path.stat().st_size
        for line in _file_lines(path, stack):
            if progress is not None:
                progress(line.offset + line.length, total)
            yield line
        return
    done = 0
    for text in source:
        data = text.encode("utf-8", "surrogateescape")
        done += len(data)
        if progress is not None:
            progress(done, None)
        yield _Line(data, data[-_LINE_TAIL:], 0, len(data))


def _read_range(fd: int, offset: int, length: int) -> bytes:
    """Return `length` bytes of the file at `offset` (fewer only at its end)."""
    parts = []
    while length > 0:
        # Linux returns at most ~2 GiB per call: loop until done or at the end.
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# Logs smaller than this are verified in-process: starting workers costs more.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def _default_workers(source: str | Path | Iterable[str]) -> int:
    if not isinstance(source, str | Path) or Path(source).stat().st_size < PARALLEL_MIN_BYTES:
        return 0
    return min(2, len(os.sched_getaffinity(0)))


TallySpec = tuple[tuple[SessionWindow, ...], CountingRule]


def _worker_main(inbox: Any, outbox: Any, path: str | None) -> None:
    """Parse, hash and tally the bucket lines sent to this worker, in order; hand its tally over.

    A line comes either as its bytes or as a byte range of the log at `path`,
    which the worker reads itself.
    """
    tally: ColumnTally | None = None
    fd = os.open(path, os.O_RDONLY) if path is not None else None
    try:
        while True:
            message = inbox.get()
            if message is None:
                return
            if message[0] == "collect":
                outbox.put(None if tally is None else tally.tally())
                tally = None
                continue
            kind, line, position, spec = message
            try:
                if kind == "range":
                    assert fd is not None
                    line = _read_range(fd, *line)
                if spec is not None and tally is None:
                    tally = ColumnTally(*spec)
                outbox.put(hash_bucket_line(line, position, tally if spec is not None else None))
            except Exception as error:  # the main process must not wait forever for an answer
                outbox.put(f"internal error while checking this bucket: {error!r}")
    finally:
        if fd is not None:
            os.close(fd)


class _Dispatcher:
    """Hands bucket lines to worker processes and gives results back in log order.

    Each worker keeps a partial tally of the buckets it parsed and hands it over
    when collected: splitting 57 million entries into columns and counting them in
    the main process was what bounded `audit verify`.  Lines go round-robin to
    workers with a queue each, so results come back in order without sorting and
    `collect` reaches every worker exactly once.
    """

    def __init__(self, workers: int, path: str | Path | None = None) -> None:
        # spawn, not fork: the caller may run threads (a progress bar) that fork would copy.
        context = multiprocessing.get_context("spawn")
        # Queues with feeder threads: a blocking put of a 3 MB line into a worker that is
        # itself blocked putting its result (the main is not reading yet) would deadlock.
        self._queues = [(context.Queue(), context.Queue()) for _ in range(workers)]
        self._processes = [
            context.Process(
                target=_worker_main,
                args=(*queues, None if path is None else os.fspath(path)),
                daemon=True,
            )
            for queues in self._queues
        ]
        for process in self._processes:
            process.start()
        self._local: ColumnTally | None = None  # the in-process share (no workers)
        self._turn = 0
        self._window = 2 * workers + 2
        self._pending: collections.deque[tuple[int, Any, int, Any, _Line]] = collections.deque()
        self.position = 0  # where the next bucket's leaves are expected to start

    def submit(self, lineno: int, line: _Line, spec: TallySpec | None, note: Any = None) -> None:
        """Queue a bucket line; with a spec its share of the figures is tallied where parsed."""
        if not self._processes:
            data = line.whole()
            expected = expected_entries(data)
            if spec is not None and self._local is None:
                self._local = ColumnTally(*spec)
            item: Any = hash_bucket_line(data, self.position, self._local if spec else None)
        else:
            guess = None
            if line.mapped is not None:
                guess = entries_by_length(line.head, line.tail, line.length)
            if guess is None:
                data = line.whole()
                expected = expected_entries(data)
                message: tuple[Any, ...] = ("bucket", data, self.position, spec)
            else:
                expected = guess
                message = ("range", (line.offset, line.length), self.position, spec)
            item = self._turn
            self._queues[item][0].put(message)
            self._turn = (self._turn + 1) % len(self._processes)
        self._pending.append((lineno, item, expected, note, line))
        self.position += expected

    def ready(self, drain: bool = False) -> Iterator[tuple[int, HashedBucket | str, Any, _Line]]:
        """Yield finished results in order; all of them when draining, else beyond the window."""
        while self._pending and (drain or len(self._pending) > self._window):
            lineno, item, expected, note, line = self._pending.popleft()
            result = item if not self._processes else self._answer(item)
            actual = 0 if isinstance(result, str) else result.count
            # Later guesses shift with this bucket's true size; in-flight ones get recomputed.
            self.position += actual - expected
            yield lineno, result, note, line

    def _answer(self, worker: int) -> Any:
        """Return the worker's next answer; raise if it died (it would never answer)."""
        outbox = self._queues[worker][1]
        while True:
            try:
                return outbox.get(timeout=1)
            except queue.Empty:
                if not self._processes[worker].is_alive():
                    raise RuntimeError(
                        f"verification worker {worker} stopped "
                        f"(exit code {self._processes[worker].exitcode})"
                    ) from None

    def collect(self) -> list[AttendanceTally]:
        """Return (and forget) the partial tallies of every bucket tallied so far."""
        assert not self._pending, "drain before collecting"
        partial = [self._local.tally()] if self._local is not None else []
        self._local = None
        for inbox, _ in self._queues:
            inbox.put(("collect",))
        for worker in range(len(self._queues)):
            tally = self._answer(worker)
            if tally is not None:
                partial.append(tally)
        return partial

    def close(self) -> None:
        for inbox, _ in self._queues:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()


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
    dispatcher = _Dispatcher(_default_workers(source) if workers is None else workers, path)
    lineno = 0
    # Lines still in flight at the end of the file may need their bytes again.
    stack = contextlib.ExitStack()
    try:
        for lineno, line in enumerate(_lines(source, progress, stack), start=1):
            if lineno > 1 and line.head.startswith(BUCKET_PREFIX) and verifier.header is not None:
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
                continue
            # Any other record depends on every bucket before it.
            for done in dispatcher.ready(drain=True):
                verifier.bucket_hashed(*done)
            try:
                kind, record = parse_record(line.whole().decode("utf-8", "replace"))
            except ValidationError as error:
                if lineno == 1:
                    verifier.problem(1, f"{error.message}; cannot read the header")
                    break
                verifier.problem(lineno, error.message)
                continue
            if lineno == 1:
                if not verifier.header_line(lineno, kind, record):
                    break
                continue
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
        for done in dispatcher.ready(drain=True):
            verifier.bucket_hashed(*done)
        if verifier.header is not None:
            verifier.absorb(0, dispatcher.collect())
    finally:
        dispatcher.close()
        stack.close()
    if lineno == 0:
        verifier.problem(0, "the log is empty")
    elif verifier.header is not None:
        verifier.finish(lineno, unfinished_ok=live)
    problems = verifier.problems
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"… and {len(problems) - MAX_PROBLEMS} more problems"]
    return VerificationReport(
        ok=not problems,
        problems=problems,
        figures=verifier.figures,
        tree_size=verifier.tree.size,
        heads_checked=verifier.heads_checked,
        header=verifier.header,
        final_head=verifier.final_head,
        head_roots=verifier.head_roots,
    )


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


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """What a host needs to check that their pseudonym is in one bucket of the log."""

    bucket_start: int
    pseudonym: str
    country: str
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the proof as a JSON object (hashes in hex)."""
        return {
            "bucket_start": self.bucket_start,
            "pseudonym": self.pseudonym,
            "country": self.country,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "path": [node.hex() for node in self.path],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> InclusionProof:
        """Build a proof from `to_json` output, or raise ValidationError."""
        try:
            return cls(
                bucket_start=int(record["bucket_start"]),
                pseudonym=str(record["pseudonym"]),
                country=str(record["country"]),
                leaf_index=int(record["leaf_index"]),
                tree_size=int(record["tree_size"]),
                path=tuple(bytes.fromhex(node) for node in record["path"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationError(f"inclusion proof is malformed: {error}") from error


def _leaf_hash_batches(log: AttendanceLog) -> Iterator[list[bytes]]:
    for bucket in log.buckets:
        yield leaf_hashes(
            bucket.bucket_start,
            [e.pseudonym for e in bucket.entries],
            [e.country for e in bucket.entries],
        )


def inclusion_proof_for(
    log: AttendanceLog, pseudonym: str, bucket_start: int, head: SignedTreeHead | None = None
) -> InclusionProof:
    """Return the proof that `pseudonym` is in the bucket, against `head` (default: final)."""
    head = head or log.final_head
    index = 0
    for bucket in log.buckets:
        if bucket.bucket_start == bucket_start:
            names = [e.pseudonym for e in bucket.entries]
            position = bisect.bisect_left(names, pseudonym)
            if position == len(names) or names[position] != pseudonym:
                raise NotFoundError(f"pseudonym {pseudonym} is not in bucket {_when(bucket_start)}")
            if index + position >= head.tree_size:
                raise NotFoundError(f"the entry came after the head of size {head.tree_size}")
            path = inclusion_proof_from_batches(
                _leaf_hash_batches(log), index + position, head.tree_size
            )
            country = bucket.entries[position].country
            return InclusionProof(
                bucket_start, pseudonym, country, index + position, head.tree_size, tuple(path)
            )
        index += len(bucket.entries)
    raise NotFoundError(f"the log has no bucket {bucket_start} ({_when(bucket_start)})")


def verify_inclusion_proof(
    pseudonym: str,
    proof: InclusionProof,
    head: SignedTreeHead,
    public_key: bytes | None = None,
) -> ProofCheck:
    """Check a host's proof against a published head (and its signature, given the key)."""
    if proof.pseudonym != pseudonym:
        return ProofCheck(False, f"the proof is for pseudonym {proof.pseudonym}, not {pseudonym}")
    if proof.tree_size != head.tree_size:
        return ProofCheck(
            False, f"the proof is for a tree of {proof.tree_size}, the head has {head.tree_size}"
        )
    if public_key is not None and not head.signature_valid(public_key):
        return ProofCheck(False, "the tree head's signature does not verify with the given key")
    leaf = leaf_bytes(proof.bucket_start, pseudonym, proof.country)
    if not verify_inclusion(leaf, proof.leaf_index, proof.tree_size, proof.path, head.root_hash):
        return ProofCheck(False, "the proof does not lead to the head's root: not included")
    return ProofCheck(
        True,
        f"{pseudonym} ({proof.country}) is entry {proof.leaf_index} of {head.tree_size}, "
        f"in bucket {_when(proof.bucket_start)}",
    )


def check_saved_head(log: AttendanceLog, saved: SignedTreeHead) -> ProofCheck:
    """Check that a head someone kept earlier is a prefix of this log (RFC 9162 consistency)."""
    hashes = [h for batch in _leaf_hash_batches(log) for h in batch]
    final = log.final_head
    if saved.tree_size > final.tree_size:
        return ProofCheck(False, f"the saved head has {saved.tree_size} entries, the log fewer")
    proof = consistency_proof_from_hashes(hashes[: final.tree_size], saved.tree_size)
    if not verify_consistency(
        saved.tree_size, final.tree_size, saved.root_hash, final.root_hash, proof
    ):
        return ProofCheck(
            False,
            f"the log was rewritten: its first {saved.tree_size} entries no longer give the "
            "saved root",
        )
    return ProofCheck(True, f"the log extends the saved head of {saved.tree_size} entries")
