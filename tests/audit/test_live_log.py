"""A live log: buckets appended and heads signed over time, each head proven from the one before."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from summitcast.audit.live import LiveLog, LiveLogBusyError, read_heads
from summitcast.audit.log import pseudonym, read_log
from summitcast.audit.merkle import verify_consistency
from summitcast.audit.verify import verify_log
from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow

START = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
T0 = int(START.timestamp())
RULE = CountingRule(k=3)
SESSIONS = (SessionWindow("session-1", START, START + timedelta(hours=1)),)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _clock(moment: list[datetime]) -> Callable[[], datetime]:
    return lambda: moment[0]


def _names(count: int, prefix: str = "loc") -> list[str]:
    return [pseudonym(b"secret", f"{prefix}-{i}") for i in range(count)]


def _new_log(path: Path) -> LiveLog:
    return LiveLog.create(
        path, summit="world", rule=RULE, sessions=SESSIONS, signing_key=KEY, created=START
    )


def _run(path: Path, buckets: int) -> tuple[LiveLog, AttendanceTally]:
    """Append `buckets` buckets of DE and FR locations, one head after each."""
    now = [START]
    live = _new_log(path)
    tally = AttendanceTally(SESSIONS, RULE)
    names = _names(12)
    for b in range(buckets):
        present = {n: ("DE" if i % 2 else "FR") for i, n in enumerate(names[: 6 + b])}
        entries = live.decide_countries(present)
        live.append_bucket(T0 + 300 * b, entries)
        tally.add_columns(T0 + 300 * b, sorted(entries), [entries[n] for n in sorted(entries)])
        now[0] = START + timedelta(minutes=5 * (b + 1), seconds=30)
        live.sign_head(KEY, _clock(now))
    return live, tally


def test_live_log_heads_chain_and_verifies_when_finished(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    live, tally = _run(path, 4)
    live.finish(tally.figures(), KEY, lambda: START + timedelta(hours=2))

    report = verify_log(path, KEY.public_key().public_bytes_raw())
    heads = read_heads(path)

    assert report.ok, report.problems
    assert report.heads_checked == 5
    assert [h.head.tree_size for h in heads] == [6, 13, 21, 30, 30]
    assert [h.previous_size for h in heads] == [0, 6, 13, 21, 30]
    for before, after in itertools.pairwise(heads):
        assert verify_consistency(
            before.head.tree_size,
            after.head.tree_size,
            before.head.root_hash,
            after.head.root_hash,
            after.consistency,
        )
    assert heads[-1].head == read_log(path).final_head


def test_live_log_reopened_appends_where_the_file_ends(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    live, tally = _run(path, 2)
    # A crash after appending a bucket, before its head and snapshot: the file is ahead.
    extra = live.decide_countries({n: "DE" for n in _names(3, "late")})
    live.append_bucket(T0 + 600, extra)
    tally.add_columns(T0 + 600, sorted(extra), [extra[n] for n in sorted(extra)])
    with path.open("ab") as out:
        out.write(b'{"type":"bucket","bucket_st')  # and a line cut short

    reopened = LiveLog.open(path)
    head = reopened.sign_head(KEY, lambda: START + timedelta(minutes=20))
    reopened.finish(tally.figures(), KEY, lambda: START + timedelta(minutes=21))

    assert head.head.tree_size == 13 + 3
    report = verify_log(path)
    assert report.ok, report.problems


def test_live_log_country_shown_only_with_k_pseudonyms(tmp_path: Path) -> None:
    live = _new_log(tmp_path / "live.jsonl")
    first = live.decide_countries({"a" * 32: "DE", "b" * 32: "DE", "c" * 32: "IS"})
    live.append_bucket(T0, first)
    second = live.decide_countries({"a" * 32: "DE", "d" * 32: "DE", "e" * 32: "DE", "f" * 32: "DE"})
    live.append_bucket(T0 + 300, second)
    third = live.decide_countries({"g" * 32: "DE", "c" * 32: "IS", "h" * 32: "ZZ"})

    # Two DE newcomers are fewer than k=3: hidden for good, even once DE is shown.
    assert first == {"a" * 32: "ZZ", "b" * 32: "ZZ", "c" * 32: "ZZ"}
    assert second == {"a" * 32: "ZZ", "d" * 32: "DE", "e" * 32: "DE", "f" * 32: "DE"}
    assert third == {"g" * 32: "DE", "c" * 32: "ZZ", "h" * 32: "ZZ"}


def test_live_log_second_appender_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    _new_log(path)
    with LiveLog.locked(path), pytest.raises(LiveLogBusyError), LiveLog.locked(path):
        pass


def test_verify_log_names_a_broken_consistency_proof(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    live, tally = _run(path, 3)
    live.finish(tally.figures(), KEY, lambda: START + timedelta(hours=2))
    lines = path.read_text().splitlines(keepends=True)
    index = [i for i, line in enumerate(lines) if line.startswith('{"type":"head"')][2]
    record = json.loads(lines[index])
    record["consistency"] = list(reversed(record["consistency"]))
    lines[index] = json.dumps(record, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))

    report = verify_log(path)

    assert report.problems == [
        f"line {index + 1}: tree head (size 21): its consistency proof from the head on line "
        f"{index - 1} (size 13) does not verify: the log was rewritten between the two heads"
    ]
