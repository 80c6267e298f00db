"""RFC 6962 / RFC 9162 Merkle tree hashes, proofs and their verification (SHA-256).

Leaves are the *data* (bytes); their hashes are SHA-256(0x00 || leaf) and an inner
node is SHA-256(0x01 || left || right).  The tree over n leaves splits at the
largest power of two smaller than n (RFC 9162 §2.1.1), so appending never
changes a complete left subtree.  That is what lets `CompactTree` keep only one
node per level and what makes a proof cost O(log n) hashes to check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "compact_range",
    "consistency_proof",
    "consistency_proof_from_compact",
    "consistency_proof_from_hashes",
    "inclusion_proof",
    "inclusion_proof_from_batches",
    "inclusion_proof_from_hashes",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_hashes",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# MTH({}) = SHA-256() of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || leaf)."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 inner node hash SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Return the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash over leaves given by their leaf hashes."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha = _sha256
    while len(level) > 1:
        # Pairing level by level and promoting a lone last node builds exactly the
        # RFC's left-complete tree; list comprehensions keep the per-hash cost low.
        it = iter(level)
        paired = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash MTH(leaves)."""
    return root_from_hashes([leaf_hash(leaf) for leaf in leaves])


def _path_ranges(index: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose subtree hashes form PATH(index, D[lo:hi]), in proof order."""
    ranges: list[tuple[int, int]] = []
    # RFC 6962 §2.1.1 defines PATH recursively with the sibling appended *after*
    # the deeper part, so collect top-down and reverse at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            index -= k
            lo = lo + k
    ranges.reverse()
    return ranges


def _subproof_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose hashes form PROOF(m, D[lo:hi]) (RFC 6962 §2.1.2)."""
    ranges: list[tuple[int, int]] = []
    complete = True  # the RFC's flag b: m names a subtree the verifier already holds
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                ranges.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            m -= k
            lo = lo + k
            complete = False
    ranges.reverse()
    return ranges


def compact_range(hashes: Sequence[bytes], position: int) -> list[tuple[int, bytes]]:
    """Return the complete subtrees (level, hash) covering leaves [position, position + n).

    Left to right, each aligned to its size, so `CompactTree.append_subtree` can
    add them in order to a tree of `position` leaves.  This lets another process
    hash a bucket's leaves and inner nodes without the rest of the tree.
    """
    sha = _sha256
    left: list[tuple[int, bytes]] = []
    right: list[tuple[int, bytes]] = []
    row = list(hashes)
    level = 0
    while row:
        if position & 1:
            # A right child whose left sibling lies before the range: a border node.
            left.append((level, row[0]))
            del row[0]
            position += 1
        if len(row) & 1:
            # A left child whose right sibling lies after the range.
            right.append((level, row.pop()))
        it = iter(row)
        row = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        position >>= 1
        level += 1
    right.reverse()
    return left + right


def inclusion_proof_from_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path for leaf `index` in the tree over these leaf hashes."""
    if not 0 <= index < len(hashes):
        raise IndexError(f"leaf index {index} outside a tree of {len(hashes)} leaves")
    return [root_from_hashes(hashes[lo:hi]) for lo, hi in _path_ranges(index, 0, len(hashes))]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path (RFC 9162 §2.1.3.1) for leaf `index`."""
    return inclusion_proof_from_hashes([leaf_hash(leaf) for leaf in leaves], index)


def inclusion_proof_from_batches(
    batches: Iterable[Sequence[bytes]], index: int, size: int
) -> list[bytes]:
    """Return the audit path for `index` in the first `size` leaf hashes streamed in batches.

    Memory stays O(log size): each proof node is a contiguous leaf range folded
    into its own `CompactTree` while the batches go past.
    """
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} outside a tree of {size} leaves")
    ranges = _path_ranges(index, 0, size)
    trees = [CompactTree() for _ in ranges]
    position = 0
    for batch in batches:
        end = position + len(batch)
        for tree, (lo, hi) in zip(trees, ranges, strict=True):
            start, stop = max(lo, position), min(hi, end)
            if start < stop:
                tree.append_hashes(batch[start - position : stop - position])
        position = end
        if position >= size:
            break
    if position < size:
        raise ValueError(f"only {position} leaves streamed, tree size {size} expected")
    return [tree.root() for tree in trees]


def consistency_proof_from_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the consistency proof from the first `old_size` leaf hashes to all of them."""
    new_size = len(hashes)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size} outside 0..{new_size}")
    if old_size in (0, new_size):
        # Nothing to prove: the empty tree is a prefix of every tree, and a tree of itself.
        return []
    return [root_from_hashes(hashes[lo:hi]) for lo, hi in _subproof_ranges(old_size, 0, new_size)]


def consistency_proof_from_compact(old: CompactTree, new_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the consistency proof from the tree `old` to it extended by `new_hashes`.

    Needs no leaf before `old.size`: every node of the proof that lies in the old
    tree is one of its compact nodes (the greedy power-of-two blocks from the
    left), and every other node lies wholly among the new leaves.  That is what
    lets a live log prove each head from the previous one without re-reading it.
    """
    old_size = old.size
    new_size = old_size + len(new_hashes)
    if old_size in (0, new_size):
        return []
    blocks = dict(old.blocks())
    proof = []
    for lo, hi in _subproof_ranges(old_size, 0, new_size):
        if hi <= old_size:
            proof.append(blocks[(lo, hi)])
        else:
            proof.append(root_from_hashes(new_hashes[lo - old_size : hi - old_size]))
    return proof


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the consistency proof (RFC 9162 §2.1.4.1) from the first old_size leaves to all."""
    return consistency_proof_from_hashes([leaf_hash(leaf) for leaf in leaves], old_size)


def root_from_inclusion_proof(
    leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """Return the root an audit path leads to (RFC 9162 §2.1.3.2), or None if it is malformed."""
    if not 0 <= index < size or len(leaf_hash_) != HASH_SIZE:
        return None
    fn, sn = index, size - 1
    r = leaf_hash_
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A right-edge node has no sibling on the levels where the tree is
            # ragged; skip those levels before continuing.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Return whether `proof` shows `leaf` at `index` in the tree of `size` with `root_hash`."""
    computed = root_from_inclusion_proof(leaf_hash(leaf), index, size, proof)
    return computed is not None and computed == root_hash


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether `proof` shows (old_size, old_root) is a prefix of (new_size, new_root)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        # Every tree extends the empty tree; RFC 9162 defines no proof for it.
        return not proof
    # RFC 9162 §2.1.4.2 from here on.
    if not proof or any(len(c) != HASH_SIZE for c in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class CompactTree:
    """An append-only Merkle tree that keeps one node per level (a compact range from 0).

    Enough to compute the root after every append, in O(log n) memory; proofs
    need the leaves again (`inclusion_proof_from_batches`).
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        # _nodes[level] is the root of the complete subtree of 2**level leaves at the
        # right edge, present exactly when bit `level` of the size is set.
        self._nodes: list[bytes | None] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @classmethod
    def from_nodes(cls, size: int, nodes: Iterable[tuple[int, bytes]]) -> CompactTree:
        """Rebuild a tree of `size` leaves from its `nodes()`, or raise ValueError."""
        tree = cls()
        for level, node in nodes:
            tree.append_subtree(level, node)
        if tree.size != size:
            raise ValueError(f"compact nodes give {tree.size} leaves, not {size}")
        return tree

    def nodes(self) -> list[tuple[int, bytes]]:
        """Return the complete subtrees (level, hash) that make up the tree, left to right."""
        return [
            (level, node)
            for level, node in reversed(list(enumerate(self._nodes)))
            if node is not None
        ]

    def blocks(self) -> list[tuple[tuple[int, int], bytes]]:
        """Return each compact node with the leaf range [lo, hi) it covers, left to right."""
        result = []
        lo = 0
        for level, node in self.nodes():
            result.append(((lo, lo + (1 << level)), node))
            lo += 1 << level
        return result

    def append(self, leaves: Iterable[bytes]) -> None:
        """Append leaves given as data."""
        sha = _sha256
        self.append_hashes([sha(b"\x00" + leaf).digest() for leaf in leaves])

    def append_hashes(self, hashes: Sequence[bytes]) -> None:
        """Append leaves given by their leaf hashes, hashing a whole level at a time."""
        sha = _sha256
        nodes = self._nodes
        row = list(hashes)
        added = len(row)
        position = self._size  # index of row[0] on the current level
        level = 0
        while row:
            if level == len(nodes):
                nodes.append(None)
            if position & 1:
                # The first new node is a right child: its left sibling is the
                # dangling node kept for this level.
                left = nodes[level]
                if left is None:  # pragma: no cover - impossible by the invariant above
                    raise AssertionError("compact tree lost a node")
                row.insert(0, left)
                position -= 1
            nodes[level] = row.pop() if len(row) & 1 else None
            it = iter(row)
            row = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
            position >>= 1
            level += 1
        self._size += added

    def append_subtree(self, level: int, node: bytes) -> None:
        """Append a complete subtree of 2**level leaves given by its root hash."""
        if self._size & ((1 << level) - 1):
            raise ValueError(f"a subtree of 2**{level} leaves cannot start at {self._size}")
        nodes = self._nodes
        added = 1 << level
        size = self._size >> level
        while size & 1:
            # Like binary addition: an existing left sibling absorbs the carry.
            left = nodes[level]
            if left is None:  # pragma: no cover - impossible by the invariant above
                raise AssertionError("compact tree lost a node")
            nodes[level] = None
            node = _sha256(b"\x01" + left + node).digest()
            level += 1
            size >>= 1
        while len(nodes) <= level:
            nodes.append(None)
        nodes[level] = node
        self._size += added

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of everything appended so far."""
        result: bytes | None = None
        for node in self._nodes:
            if node is not None:
                result = node if result is None else node_hash(node, result)
        return EMPTY_ROOT if result is None else result
