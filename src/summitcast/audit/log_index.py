"""A published log's index: a host's buckets and inclusion proof without reading the whole log.

Written beside the log at publication (``<log>.index``, an SQLite file):

- ``hosts``: per pseudonym its country, bucket starts and leaf indexes (a B-tree
  lookup, O(log n));
- ``buckets``: per bucket its byte offset in the log, first leaf and entry count,
  so one bucket line can be read with a seek;
- ``blocks``: the hash of every complete aligned block of ``2**block_level`` leaves.

An inclusion proof needs O(log n) subtree hashes (RFC 6962 PATH).  Those of whole
blocks come from ``blocks``; those inside a block, or in the unfinished last block,
are hashed from the few bucket lines that hold the block's leaves.  The index is
only a shortcut: the proof it gives is checked against the signed head like any other.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from array import array
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from summitcast.audit.bucket_lines import parse_bucket_line
from summitcast.audit.merkle import _path_ranges, node_hash, root_from_hashes
from summitcast.audit.records import SignedTreeHead, leaf_hashes

__all__ = ["BLOCK_LEVEL", "IndexedHost", "LogIndex", "LogIndexBuilder"]

# 65,536 leaves: a block spans at most three 50,000-location buckets, and a 4-day
# log of 57 million entries has ~870 of them (28 kB).
BLOCK_LEVEL = 16
_LITTLE_ENDIAN = sys.byteorder == "little"


def _pack(values: array[int]) -> bytes:
    if not _LITTLE_ENDIAN:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpack(data: bytes) -> list[int]:
    values = array("q")
    values.frombytes(data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values.tolist()


class LogIndexBuilder:
    """Collects the index while the log is written (see `AttendanceLogWriter`'s observer)."""

    def __init__(self, block_level: int = BLOCK_LEVEL) -> None:
        """Start empty."""
        self.block_level = block_level
        self._block = 1 << block_level
        self._pending: list[bytes] = []  # leaf hashes of the unfinished block
        self._blocks: list[bytes] = []
        self._buckets: list[tuple[int, int, int, int]] = []  # start, offset, first leaf, count
        self._hosts: dict[str, tuple[str, array[int], array[int]]] = {}

    def bucket(
        self,
        start: int,
        offset: int,
        position: int,
        pseudonyms: Sequence[str],
        countries: Sequence[str],
        hashes: Sequence[bytes],
    ) -> None:
        """Note one bucket line: where it is, who is in it, and its leaf hashes."""
        self._buckets.append((start, offset, position, len(pseudonyms)))
        hosts = self._hosts
        for at, (name, country) in enumerate(zip(pseudonyms, countries, strict=True)):
            host = hosts.get(name)
            if host is None:
                host = hosts[name] = (country, array("q"), array("q"))
            host[1].append(start)
            host[2].append(position + at)
        pending = self._pending
        pending.extend(hashes)
        while len(pending) >= self._block:
            self._blocks.append(root_from_hashes(pending[: self._block]))
            del pending[: self._block]

    def write(self, path: Path, head: SignedTreeHead) -> None:
        """Write the index file (replacing any), with the log's final signed head."""
        path.unlink(missing_ok=True)
        with closing(sqlite3.connect(path)) as db, db:
            db.executescript(
                "CREATE TABLE meta (block_level INTEGER NOT NULL, final_head TEXT NOT NULL);"
                "CREATE TABLE hosts (pseudonym TEXT PRIMARY KEY, country TEXT NOT NULL,"
                " starts BLOB NOT NULL, leaves BLOB NOT NULL) WITHOUT ROWID;"
                "CREATE TABLE buckets (first_leaf INTEGER PRIMARY KEY, start INTEGER NOT NULL,"
                " offset INTEGER NOT NULL, count INTEGER NOT NULL);"
                "CREATE TABLE blocks (ordinal INTEGER PRIMARY KEY, hash BLOB NOT NULL);"
            )
            db.execute(
                "INSERT INTO meta VALUES (?, ?)", (self.block_level, json.dumps(head.to_json()))
            )
            db.executemany(
                "INSERT INTO hosts VALUES (?, ?, ?, ?)",
                (
                    (name, country, _pack(starts), _pack(leaves))
                    for name, (country, starts, leaves) in self._hosts.items()
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO buckets VALUES (?, ?, ?, ?)",
                # Empty buckets hold no leaves: the first one at a position is enough.
                ((first, start, offset, n) for start, offset, first, n in self._buckets if n),
            )
            db.executemany("INSERT INTO blocks VALUES (?, ?)", enumerate(self._blocks))


class IndexedHost:
    """One pseudonym's entry in the index."""

    def __init__(self, country: str, starts: list[int], leaves: list[int]) -> None:
        """Keep its country, bucket starts and leaf indexes (same order)."""
        self.country = country
        self.starts = starts
        self.leaves = leaves


class LogIndex:
    """Reads an index file and the log beside it."""

    def __init__(self, index_path: Path, log_path: Path) -> None:
        """Open nothing yet: each call opens the files it needs."""
        self._index = index_path
        self._log = log_path

    def _connect(self) -> sqlite3.Connection:
        # Read-only: a request must never change a published index.
        return sqlite3.connect(f"file:{self._index}?mode=ro", uri=True)

    def final_head(self) -> SignedTreeHead:
        """Return the log's final signed head, as written at publication."""
        with closing(self._connect()) as db:
            (text,) = db.execute("SELECT final_head FROM meta").fetchone()
        record = json.loads(text)
        return SignedTreeHead.from_record(
            record, summit=record["summit"], header_sha256=record["header_sha256"]
        )

    def host(self, name: str) -> IndexedHost | None:
        """Return a pseudonym's buckets and leaves, or None when it is not in the log."""
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT country, starts, leaves FROM hosts WHERE pseudonym = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        return IndexedHost(row[0], _unpack(row[1]), _unpack(row[2]))

    def inclusion_path(self, leaf: int, tree_size: int) -> list[bytes]:
        """Return the RFC 6962 audit path of one leaf in the tree of `tree_size` leaves."""
        with closing(self._connect()) as db:
            (level,) = db.execute("SELECT block_level FROM meta").fetchone()
            block = 1 << level
            complete = tree_size // block
            stored = [
                bytes(h)
                for (h,) in db.execute(
                    "SELECT hash FROM blocks WHERE ordinal < ? ORDER BY ordinal", (complete,)
                )
            ]
            leaves: dict[int, list[bytes]] = {}  # block ordinal → its leaf hashes

            def block_leaves(ordinal: int) -> list[bytes]:
                if ordinal not in leaves:
                    lo, hi = ordinal * block, min((ordinal + 1) * block, tree_size)
                    leaves[ordinal] = self._leaf_hashes(db, lo, hi)
                return leaves[ordinal]

            def subtree(lo: int, hi: int) -> bytes:
                """Return MTH of leaves [lo, hi): stored blocks above, leaf hashes below."""
                if lo // block == (hi - 1) // block:
                    base = lo // block * block
                    return root_from_hashes(block_leaves(lo // block)[lo - base : hi - base])
                if lo % block == 0 and hi % block == 0:
                    return root_from_hashes(stored[lo // block : hi // block])
                # A range that ends in the unfinished last block: split as RFC 6962 does.
                k = 1 << ((hi - lo - 1).bit_length() - 1)
                return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))

            return [subtree(lo, hi) for lo, hi in _path_ranges(leaf, 0, tree_size)]

    def _leaf_hashes(self, db: sqlite3.Connection, lo: int, hi: int) -> list[bytes]:
        """Return the leaf hashes of [lo, hi), read from the bucket lines that hold them."""
        rows = db.execute(
            "SELECT first_leaf, offset FROM buckets WHERE first_leaf < ? AND first_leaf >= "
            "coalesce((SELECT max(first_leaf) FROM buckets WHERE first_leaf <= ?), 0) "
            "ORDER BY first_leaf",
            (hi, lo),
        ).fetchall()
        hashes: list[bytes] = []
        first = rows[0][0] if rows else lo
        with self._log.open("rb") as log:
            for _, offset in rows:
                log.seek(offset)
                start, pseudonyms, countries = parse_bucket_line(log.readline())
                hashes.extend(leaf_hashes(start, pseudonyms, countries))
        return hashes[lo - first : hi - first]
