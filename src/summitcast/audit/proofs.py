"""A host's inclusion proof: make it from a log, check it against a signed head; saved heads."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from summitcast.audit.log import AttendanceLog
from summitcast.audit.merkle import (
    consistency_proof_from_hashes,
    inclusion_proof_from_batches,
    verify_consistency,
    verify_inclusion,
)
from summitcast.audit.records import SignedTreeHead, bucket_time, leaf_bytes, leaf_hashes
from summitcast.errors import NotFoundError, ValidationError

__all__ = [
    "InclusionProof",
    "ProofCheck",
    "check_saved_head",
    "inclusion_proof_for",
    "verify_inclusion_proof",
]


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """Outcome of checking one proof, with a sentence for a person."""

    ok: bool
    message: str


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
                raise NotFoundError(
                    f"pseudonym {pseudonym} is not in bucket {bucket_time(bucket_start)}"
                )
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
    raise NotFoundError(f"the log has no bucket {bucket_start} ({bucket_time(bucket_start)})")


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
        f"in bucket {bucket_time(proof.bucket_start)}",
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
