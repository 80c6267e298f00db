"""An auditor's files: a log verified with a saved heads.json, a host's proof document."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from pathlib import Path

from summitcast.audit.dispatch import Progress
from summitcast.audit.live import PublishedHead
from summitcast.audit.log import read_log
from summitcast.audit.proofs import (
    InclusionProof,
    ProofCheck,
    inclusion_proof_for,
    verify_inclusion_proof,
)
from summitcast.audit.records import SignedTreeHead
from summitcast.audit.verify import VerificationReport, check_published_heads, verify_log
from summitcast.errors import ValidationError

__all__ = [
    "check_host_proof",
    "export_host_proof",
    "parse_public_key",
    "proof_root",
    "read_published_heads",
    "verify_log_file",
]


def parse_public_key(text: str) -> bytes:
    """Return a raw Ed25519 public key from base64 text, or raise ValidationError."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValidationError("the public key is not base64", field="public_key") from error
    if len(key) != 32:
        raise ValidationError("the public key is not 32 bytes of Ed25519", field="public_key")
    return key


def read_published_heads(path: Path) -> list[PublishedHead]:
    """Return the heads of a saved heads.json, or raise ValidationError saying why not."""
    try:
        document = json.loads(path.read_bytes())
        records = document["heads"] if isinstance(document, dict) else document
        if not isinstance(records, list):
            raise TypeError("heads is not a list")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"{path.name} is not a heads.json document: {error}") from error
    return [PublishedHead.from_json(record) for record in records]


def verify_log_file(
    path: Path,
    expected_public_key: str | None = None,
    *,
    progress: Progress | None = None,
    heads: Path | None = None,
    live: bool = False,
) -> VerificationReport:
    """Verify the log at `path`, the key given as base64 text as printed in the header.

    With `heads` (a saved heads.json), also check that every head published during
    the event chains into this log.
    """
    key = None if expected_public_key is None else parse_public_key(expected_public_key)
    published = None if heads is None else read_published_heads(heads)
    report = verify_log(path, key, progress=progress, live=live)
    if published is None:
        return report
    problems = [*report.problems, *check_published_heads(report, published)]
    return dataclasses.replace(report, ok=not problems, problems=problems)


def export_host_proof(log_path: Path, pseudonym: str, bucket_start: int) -> str:
    """Return JSON a host can keep: their inclusion proof and the final signed head."""
    log = read_log(log_path)
    proof = inclusion_proof_for(log, pseudonym, bucket_start)
    document = {"proof": proof.to_json(), "head": log.final_head.to_json()}
    return json.dumps(document, indent=2)


def proof_root(document: str) -> str:
    """Return the hex root hash of the head inside a proof document."""
    try:
        return str(json.loads(document)["head"]["root_hash"]).lower()
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"not an inclusion proof document: {error}") from error


def check_host_proof(document: str, pseudonym: str, public_key: str | None = None) -> ProofCheck:
    """Check a document from `export_host_proof` for the host's own pseudonym."""
    try:
        data = json.loads(document)
        proof = InclusionProof.from_json(data["proof"])
        head = SignedTreeHead.from_json(data["head"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValidationError(f"not an inclusion proof document: {error}") from error
    key = None if public_key is None else parse_public_key(public_key)
    return verify_inclusion_proof(pseudonym, proof, head, key)
