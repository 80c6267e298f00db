"""Tests for the RFC 6962/9162 Merkle tree in summitcast.audit.merkle."""

from __future__ import annotations

import hashlib
import random

import pytest

from summitcast.audit.merkle import (
    EMPTY_ROOT,
    CompactTree,
    compact_range,
    consistency_proof,
    consistency_proof_from_compact,
    consistency_proof_from_hashes,
    inclusion_proof,
    inclusion_proof_from_batches,
    leaf_hash,
    root,
    root_from_hashes,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit

# Reference vectors from transparency-dev/merkle proof/verify_test.go (RFC 6962 hasher).
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
VECTOR_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# (1-based leaf, tree size, path)
VECTOR_INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
VECTOR_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def _leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    changed = list(proof)
    changed[i] = bytes([changed[i][0] ^ 0x08]) + changed[i][1:]
    return changed


def test_root_empty_tree_is_sha256_of_nothing() -> None:
    assert root([]) == hashlib.sha256(b"").digest() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_root_matches_reference_vector(size: int) -> None:
    assert root(VECTOR_LEAVES[:size]) == VECTOR_ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "path"), VECTOR_INCLUSION)
def test_inclusion_proof_matches_reference_vector(leaf: int, size: int, path: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in path]
    assert inclusion_proof(VECTOR_LEAVES[:size], leaf - 1) == expected
    tree_root = VECTOR_ROOTS[size - 1]
    assert verify_inclusion(VECTOR_LEAVES[leaf - 1], leaf - 1, size, expected, tree_root)


@pytest.mark.parametrize(("old", "new", "path"), VECTOR_CONSISTENCY)
def test_consistency_proof_matches_reference_vector(old: int, new: int, path: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in path]
    assert consistency_proof(VECTOR_LEAVES[:new], old) == expected
    assert verify_consistency(old, new, VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1], expected)


def test_inclusion_all_sizes_and_indexes_up_to_64_verify() -> None:
    leaves = _leaves(64)
    for size in range(1, 65):
        tree_root = root(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            assert verify_inclusion(leaves[index], index, size, proof, tree_root), (size, index)


def test_inclusion_all_sizes_up_to_64_reject_tampering() -> None:
    leaves = _leaves(64)
    for size in range(1, 65):
        tree_root = root(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            leaf = leaves[index]
            for i in range(len(proof)):
                assert not verify_inclusion(leaf, index, size, _flip(proof, i), tree_root)
            for wrong_index in {index - 1, index + 1, index ^ 2} - {index}:
                assert not verify_inclusion(leaf, wrong_index, size, proof, tree_root)
            # size + 1 can share the proof's shape (3 and 4 for index 0): only the signed
            # head binds the size, so like the reference tests probe * 2 and // 2.
            for wrong_size in {size * 2, size // 2} - {size}:
                assert not verify_inclusion(leaf, index, wrong_size, proof, tree_root)
            assert not verify_inclusion(b"other leaf", index, size, proof, tree_root)
            assert not verify_inclusion(leaf, index, size, [*proof, tree_root], tree_root)
            assert not verify_inclusion(leaf, index, size, [tree_root, *proof], tree_root)
            if proof:
                assert not verify_inclusion(leaf, index, size, proof[:-1], tree_root)


def test_consistency_all_size_pairs_up_to_64_verify_and_reject_tampering() -> None:
    leaves = _leaves(64)
    roots = [root(leaves[:n]) for n in range(65)]
    for new in range(1, 65):
        for old in range(1, new):
            proof = consistency_proof(leaves[:new], old)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            for i in range(len(proof)):
                assert not verify_consistency(old, new, roots[old], roots[new], _flip(proof, i))
            assert not verify_consistency(old, new, roots[new], roots[old], proof)
            assert not verify_consistency(old, new, roots[old], roots[new], [])
            assert not verify_consistency(old, new, roots[old], roots[new], proof[:-1])
            assert not verify_consistency(old, new, roots[old], roots[new], [*proof, roots[old]])
            for wrong_old in {old - 1, old + 1} - {old, 0, new}:
                assert not verify_consistency(wrong_old, new, roots[old], roots[new], proof)
            assert not verify_consistency(old, new * 2, roots[old], roots[new], proof)


def test_verify_consistency_trivial_cases() -> None:
    one = root(_leaves(1))
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 1, EMPTY_ROOT, one, [])
    assert verify_consistency(1, 1, one, one, [])
    assert not verify_consistency(1, 1, one, EMPTY_ROOT, [])
    assert not verify_consistency(1, 1, one, one, [one])
    assert not verify_consistency(2, 1, one, one, [])


def test_verify_inclusion_index_outside_tree_fails() -> None:
    leaves = _leaves(4)
    proof = inclusion_proof(leaves, 3)
    assert not verify_inclusion(leaves[3], 4, 4, proof, root(leaves))
    assert not verify_inclusion(leaves[0], 0, 0, [], EMPTY_ROOT)


def test_compact_tree_root_matches_root_for_every_batch_split() -> None:
    leaves = _leaves(64)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    for batch in (1, 2, 3, 5, 7, 16, 64):
        tree = CompactTree()
        for start in range(0, 64, batch):
            tree.append_hashes(hashes[start : start + batch])
            assert tree.root() == root(leaves[: tree.size]), (batch, tree.size)
    empty = CompactTree()
    empty.append([])
    assert (empty.size, empty.root()) == (0, EMPTY_ROOT)


def test_inclusion_proof_from_batches_equals_in_memory_proof() -> None:
    leaves = _leaves(53)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    batches = [hashes[i : i + 6] for i in range(0, 53, 6)]
    for size in (1, 17, 53):
        for index in range(size):
            assert inclusion_proof_from_batches(batches, index, size) == inclusion_proof(
                leaves[:size], index
            )


@pytest.mark.parametrize("seed", range(20))
def test_compact_range_appended_as_subtrees_gives_same_root(seed: int) -> None:
    rng = random.Random(seed)
    hashes = [leaf_hash(bytes([i % 256, i // 256])) for i in range(rng.randrange(0, 300))]
    tree = CompactTree()
    position = 0
    while position < len(hashes):
        end = min(len(hashes), position + rng.randrange(1, 70))
        for level, node in compact_range(hashes[position:end], position):
            tree.append_subtree(level, node)
        position = end
        assert tree.size == end
        assert tree.root() == root_from_hashes(hashes[:end])
    assert tree.root() == root_from_hashes(hashes)


def test_compact_tree_misaligned_subtree_is_refused() -> None:
    tree = CompactTree()
    tree.append_hashes([leaf_hash(b"a")])
    with pytest.raises(ValueError, match="cannot start at 1"):
        tree.append_subtree(1, leaf_hash(b"b"))


@pytest.mark.parametrize("new_size", [1, 2, 3, 5, 8, 13, 16, 17, 31, 64, 100])
def test_consistency_proof_from_compact_equals_the_full_proof(new_size: int) -> None:
    hashes = [leaf_hash(f"leaf {i}".encode()) for i in range(new_size)]
    for old_size in range(new_size + 1):
        old = CompactTree()
        old.append_hashes(hashes[:old_size])
        proof = consistency_proof_from_compact(old, hashes[old_size:])
        assert proof == consistency_proof_from_hashes(hashes, old_size)
        assert (
            verify_consistency(old_size, new_size, old.root(), root_from_hashes(hashes), proof)
            or old_size == 0
        )


def test_compact_tree_from_nodes_gives_the_same_root_and_appends_on() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(45)]
    tree = CompactTree()
    tree.append_hashes(hashes[:29])
    rebuilt = CompactTree.from_nodes(29, tree.nodes())
    rebuilt.append_hashes(hashes[29:])
    assert rebuilt.root() == root_from_hashes(hashes)
    with pytest.raises(ValueError, match="give 29 leaves, not 30"):
        CompactTree.from_nodes(30, tree.nodes())
