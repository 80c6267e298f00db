"""Bucket lines of the log parsed and hashed fast, in this process or in worker processes.

A 4-day log of 50,000 locations holds ~57 million entries: `json.loads` and
per-entry dicts would dominate verification.  A line exactly as
`AttendanceLogWriter` writes it (compact JSON, fixed key order) has fixed-width
entries of 64 bytes, so it is checked and cut into columns as a numpy array of
rows; any other spelling of the same JSON takes the general path with the same
result.  No Python object is made per entry except the RFC 9162 leaf and node
hashes, which are most of the cost.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from summitcast.audit.log import parse_bucket_columns, parse_record
from summitcast.audit.merkle import compact_range
from summitcast.audit.records import leaf_hashes
from summitcast.audit.tally import ColumnTally, Names
from summitcast.errors import ValidationError

__all__ = [
    "BUCKET_PREFIX",
    "HashedBucket",
    "bucket_start_of",
    "entries_by_length",
    "expected_entries",
    "hash_bucket_line",
    "parse_bucket_line",
]

Rows = npt.NDArray[np.uint8]

BUCKET_PREFIX = b'{"type":"bucket",'
_HEAD = re.compile(rb'\{"type":"bucket","bucket_start":(0|-?[1-9][0-9]{0,17}),"entries":\[')
_TAIL = re.compile(rb"\]\}\r?\n?")
# One entry and its comma, 64 bytes: every byte that is not a pseudonym or country
# digit is fixed, so a whole bucket is an (n, 64) array checked column-wise.
_TEMPLATE = b'{"pseudonym":"' + b"p" * 32 + b'","country":"' + b"CC" + b'"},'
_WIDTH = len(_TEMPLATE)
_PSEUDONYM_AT = _TEMPLATE.index(b"p" * 32)
_COUNTRY_AT = _TEMPLATE.index(b"CC")
_FIXED = np.array(
    [
        i
        for i in range(_WIDTH)
        if not (_PSEUDONYM_AT <= i < _PSEUDONYM_AT + 32 or _COUNTRY_AT <= i < _COUNTRY_AT + 2)
    ]
)
_FIXED_BYTES = np.frombuffer(_TEMPLATE, np.uint8)[_FIXED]


def _tail_length(line_end: bytes) -> int | None:
    """Return the length of the `]}` + newline ending of a line, None when it has none."""
    for tail in (b"]}\r\n", b"]}\n", b"]}"):
        if line_end.endswith(tail):
            return len(tail)
    return None


def entries_by_length(line_start: bytes, line_end: bytes, length: int) -> int | None:
    """Return the entry count of a bucket line as our writer spells it, from its length alone.

    `line_start` holds at least the line's first 64 bytes and `line_end` its last 4.
    A guess (None when the shape does not fit): the parser checks every byte later.
    """
    head = _HEAD.match(line_start)
    tail = _tail_length(line_end)
    if head is None or tail is None:
        return None
    body = length - head.end() - tail
    if body == 0:
        return 0
    n, rest = divmod(body + 1, _WIDTH)
    return n if not rest and n > 0 else None


def _canonical_rows(line: bytes) -> tuple[int, Rows] | None:
    """Return (bucket_start, entries as an (n, 64) byte array) of a line our writer spelt."""
    head = _HEAD.match(line)
    tail = _TAIL.search(line, len(line) - 4) if head else None
    if head is None or tail is None or tail.end() != len(line):
        return None
    start = int(head.group(1))
    size = tail.start() - head.end()
    if size == 0:
        return start, np.empty((0, _WIDTH), np.uint8)
    n, rest = divmod(size + 1, _WIDTH)
    if rest:
        return None
    flat = np.empty(n * _WIDTH, np.uint8)
    flat[:-1] = np.frombuffer(line, np.uint8, size, head.end())
    flat[-1] = ord(",")  # the last entry has no comma of its own
    rows = flat.reshape(n, _WIDTH)
    if not (rows[:, _FIXED] == _FIXED_BYTES).all():
        return None
    digits = rows[:, _PSEUDONYM_AT : _PSEUDONYM_AT + 32]
    # uint8 arithmetic wraps, so one comparison per range checks both of its ends.
    if not (((digits - 48) < 10) | ((digits - 97) < 6)).all():
        return None
    if not ((rows[:, _COUNTRY_AT : _COUNTRY_AT + 2] - 65) < 26).all():
        return None
    return start, rows


def _strictly_sorted(pseudonyms: Rows) -> bool:
    """Return whether the rows of 32 hex digits are in strictly increasing order."""
    if len(pseudonyms) < 2:
        return True
    # ASCII digits sort before a–f, so comparing the bytes as big-endian integers,
    # 8 at a time, orders them as strings.
    words = pseudonyms.view(">u8")
    before, after = words[:-1], words[1:]
    less = np.zeros(len(before), bool)
    equal = np.ones(len(before), bool)
    for column in range(words.shape[1]):
        less |= equal & (before[:, column] < after[:, column])
        equal &= before[:, column] == after[:, column]
    return bool(less.all())


@dataclass(frozen=True, slots=True)
class _Columns:
    """A canonical bucket line cut into columns: pseudonyms (n, 32) and countries (n, 2)."""

    start: int
    pseudonyms: Rows
    countries: Rows

    def lists(self) -> tuple[list[str], list[str]]:
        """Return the columns as lists of strings, in log order."""
        text = self.pseudonyms.tobytes().decode("ascii")
        codes = self.countries.tobytes().decode("ascii")
        return (
            [text[i : i + 32] for i in range(0, len(text), 32)],
            [codes[i : i + 2] for i in range(0, len(codes), 2)],
        )

    def names(self) -> tuple[Names, Names]:
        """Return the columns as numpy byte strings ("S32", "S2") for `ColumnTally`."""
        return self.pseudonyms.view("S32").ravel(), self.countries.view("S2").ravel()

    def leaf_hashes(self) -> list[bytes]:
        """Return the RFC 9162 leaf hashes, every leaf's bytes laid out by numpy."""
        # `leaf_bytes` with the "\x00" leaf prefix: fixed width within a bucket, so the
        # leaves are rows of one array and no string is built per entry.
        prefix = f'\x00{{"bucket_start":{self.start},"country":"'.encode()
        middle, end = b'","pseudonym":"', b'"}'
        width = len(prefix) + 2 + len(middle) + 32 + len(end)
        n = len(self.pseudonyms)
        leaves = np.empty((n, width), np.uint8)
        at = len(prefix)
        leaves[:, :at] = np.frombuffer(prefix, np.uint8)
        leaves[:, at : at + 2] = self.countries
        at += 2
        leaves[:, at : at + len(middle)] = np.frombuffer(middle, np.uint8)
        at += len(middle)
        leaves[:, at : at + 32] = self.pseudonyms
        leaves[:, at + 32 :] = np.frombuffer(end, np.uint8)
        data = leaves.tobytes()
        sha = hashlib.sha256
        return [sha(data[i : i + width]).digest() for i in range(0, n * width, width)]


def _fast_columns(line: bytes) -> _Columns | None:
    """Return the columns of a line our writer spelt with sorted entries (None otherwise)."""
    canonical = _canonical_rows(line)
    if canonical is None:
        return None
    start, rows = canonical
    pseudonyms = np.ascontiguousarray(rows[:, _PSEUDONYM_AT : _PSEUDONYM_AT + 32])
    if not _strictly_sorted(pseudonyms):
        return None  # the general path names the offending entry
    countries = np.ascontiguousarray(rows[:, _COUNTRY_AT : _COUNTRY_AT + 2])
    return _Columns(start, pseudonyms, countries)


@dataclass(frozen=True, slots=True)
class HashedBucket:
    """One parsed bucket line: columns joined into strings (cheap to pickle) and its subtrees."""

    start: int
    count: int
    pseudonyms: str  # count × 32 hex digits ("" when tallied where it was parsed)
    countries: str  # count × 2 letters ("" when tallied where it was parsed)
    position: int
    subtrees: list[tuple[int, bytes]]
    tallied: bool = False  # counted into the tally of the process that parsed it
    tally_problem: str = ""  # why the tally refused it ("" when it did not)

    def columns(self) -> tuple[list[str], list[str]]:
        """Return the pseudonyms and countries as lists, in log order."""
        p, c = self.pseudonyms, self.countries
        return (
            [p[i : i + 32] for i in range(0, 32 * self.count, 32)],
            [c[i : i + 2] for i in range(0, 2 * self.count, 2)],
        )


def bucket_start_of(line: bytes) -> int | None:
    """Return the bucket start of a line spelt as our writer spells it (None otherwise)."""
    head = _HEAD.match(line)
    return int(head.group(1)) if head else None


def expected_entries(line: bytes) -> int:
    """Return how many entries a bucket line holds if it is well-formed (a cheap count)."""
    # Values are hex digits or capital letters, so the key appears once per entry.
    return line.count(b'"pseudonym"')


def _general_columns(line: bytes) -> tuple[int, list[str], list[str]]:
    """Parse any spelling of a bucket line with the JSON parser, or raise ValidationError."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError(f"not UTF-8 text (byte {error.start})") from error
    kind, record = parse_record(text)
    if kind != "bucket":  # pragma: no cover - callers only pass bucket lines
        raise ValidationError(f"a {kind} record where a bucket was expected")
    return parse_bucket_columns(record)


def parse_bucket_line(line: bytes) -> tuple[int, list[str], list[str]]:
    """Return (bucket_start, pseudonyms, countries) of a bucket line, or raise ValidationError."""
    columns = _fast_columns(line)
    if columns is not None:
        return columns.start, *columns.lists()
    return _general_columns(line)


def hash_bucket_line(
    line: bytes, position: int, tally: ColumnTally | None = None
) -> HashedBucket | str:
    """Parse a bucket line and hash its entries as the leaves from `position` on; or say why not.

    With a tally, the bucket is also counted into it (here, where the columns
    already are: shipping them to another process cost more than counting them).
    Runs in worker processes: returns the problem as a string instead of raising.
    """
    columns = _fast_columns(line)
    try:
        if columns is not None:
            start = columns.start
            hashes = columns.leaf_hashes()
            pseudonyms, countries = columns.names()
        else:
            start, names, codes = _general_columns(line)
            hashes = leaf_hashes(start, names, codes)
            # Checked as lowercase hex and capital letters, so ASCII: bytes as they are.
            pseudonyms, countries = np.array(names, "S32"), np.array(codes, "S2")
    except ValidationError as error:
        return error.message
    problem = ""
    if tally is not None:
        try:
            tally.add(start, pseudonyms, countries)
        except ValidationError as error:
            problem = error.message
    # A tallied bucket's columns stay here: shipping 1.7 MB back per bucket costs the
    # main process more than re-reading the rare line whose position was guessed wrong.
    return HashedBucket(
        start,
        len(pseudonyms),
        "" if tally is not None else pseudonyms.tobytes().decode("ascii"),
        "" if tally is not None else countries.tobytes().decode("ascii"),
        position,
        compact_range(hashes, position),
        tallied=tally is not None,
        tally_problem=problem,
    )
