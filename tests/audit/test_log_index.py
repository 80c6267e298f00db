"""The publication index gives the same buckets and inclusion proofs as reading the whole log."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from summitcast.audit.log import AttendanceLogWriter, LogEntry, read_log
from summitcast.audit.log_index import LogIndex, LogIndexBuilder
from summitcast.audit.proofs import inclusion_proof_for
from summitcast.domain.attendance import CountingRule, SessionWindow

pytestmark = pytest.mark.unit

START = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
RULE = CountingRule(k=1)


def _write(path: Path, block_level: int) -> tuple[LogIndex, int]:
    """A log of 9 buckets of 0–13 random pseudonyms (one empty), with its index."""
    rng = random.Random(6)
    names = [f"{n:032x}" for n in range(40)]
    session = SessionWindow("s1", START, START + timedelta(minutes=45))
    builder = LogIndexBuilder(block_level)
    with path.open("w", encoding="utf-8") as out:
        writer = AttendanceLogWriter(
            out,
            summit="index-test",
            rule=RULE,
            sessions=[session],
            signing_key=Ed25519PrivateKey.generate(),
            observer=builder,
        )
        for b in range(9):
            present = [] if b == 4 else rng.sample(names, rng.randint(1, 13))
            writer.append_bucket(
                int(START.timestamp()) + 300 * b, [LogEntry(n, "DE") for n in present]
            )
            writer.sign_head()
        _, head = writer.finish()
    index_path = path.with_name(path.name + ".index")
    builder.write(index_path, head)
    return LogIndex(index_path, path), head.tree_size


@pytest.mark.parametrize("block_level", [0, 2, 3, 16])
def test_index_proofs_equal_whole_log_proofs(tmp_path: Path, block_level: int) -> None:
    path = tmp_path / "log.jsonl"
    index, size = _write(path, block_level)
    log = read_log(path)

    for bucket in log.buckets:
        for entry in bucket.entries:
            expected = inclusion_proof_for(log, entry.pseudonym, bucket.bucket_start)
            host = index.host(entry.pseudonym)
            assert host is not None
            at = host.starts.index(bucket.bucket_start)
            assert host.leaves[at] == expected.leaf_index
            assert index.inclusion_path(host.leaves[at], size) == list(expected.path)
    assert index.final_head() == log.final_head


def test_index_host_buckets_are_those_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    index, _ = _write(path, 2)
    log = read_log(path)
    name = log.buckets[0].entries[0].pseudonym

    host = index.host(name)

    assert host is not None
    assert host.starts == [
        b.bucket_start for b in log.buckets if any(e.pseudonym == name for e in b.entries)
    ]
    assert host.country == "DE"
    assert index.host("f" * 32) is None
