"""The lines of a log to verify, and the worker processes that parse and hash its buckets.

`verify_log` reads a log once: each line is a `LogLine` (a file's lines stay in a
memory map), and bucket lines go to `BucketDispatcher`, which hands them to worker
processes and gives the results back in log order.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from summitcast.audit.bucket_lines import (
    HashedBucket,
    entries_by_length,
    expected_entries,
    hash_bucket_line,
)
from summitcast.audit.tally import ColumnTally
from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow

__all__ = [
    "PARALLEL_MIN_BYTES",
    "BucketDispatcher",
    "LogLine",
    "Progress",
    "TallySpec",
    "default_workers",
    "log_lines",
]

Progress = Callable[[int, int | None], None]

# Enough of a line to read a bucket's start, and of its end to see how it closes.
_LINE_HEAD = 128
_LINE_TAIL = 4


@dataclass(frozen=True, slots=True)
class LogLine:
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


def _file_lines(path: Path, stack: contextlib.ExitStack) -> Iterator[LogLine]:
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
        yield LogLine(head, tail, offset, end - offset, mapped)
        offset = end


def log_lines(
    source: str | Path | Iterable[str], progress: Progress | None, stack: contextlib.ExitStack
) -> Iterator[LogLine]:
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
        yield LogLine(data, data[-_LINE_TAIL:], 0, len(data))


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


def default_workers(source: str | Path | Iterable[str]) -> int:
    """Return how many worker processes suit a log: 2 for a large file with 2+ cores, else 0."""
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


class BucketDispatcher:
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
        self._pending: collections.deque[tuple[int, Any, int, Any, LogLine]] = collections.deque()
        self.position = 0  # where the next bucket's leaves are expected to start

    def submit(self, lineno: int, line: LogLine, spec: TallySpec | None, note: Any = None) -> None:
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

    def ready(self, drain: bool = False) -> Iterator[tuple[int, HashedBucket | str, Any, LogLine]]:
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
        """Stop the workers (ended after 5 s if they do not leave by themselves)."""
        for inbox, _ in self._queues:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
