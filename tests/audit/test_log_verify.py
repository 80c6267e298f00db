"""A simulated summit written as an attendance log, verified, tampered with and proven."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from summitcast.audit.auditor import check_host_proof, export_host_proof, verify_log_file
from summitcast.audit.log import (
    AttendanceLog,
    LogEntry,
    SignedTreeHead,
    canonical_json,
    leaf_bytes,
    pseudonym,
    read_log,
    write_attendance_log,
)
from summitcast.audit.proofs import check_saved_head, inclusion_proof_for, verify_inclusion_proof
from summitcast.audit.verify import verify_log
from summitcast.domain.attendance import (
    CountingRule,
    LocationHeartbeats,
    SessionWindow,
    bucketize,
    summarise,
)
from summitcast.domain.privacy import PrivacyLevel
from summitcast.errors import ImportFormatError, NotFoundError

SECRET = b"summit audit secret for tests"
DAY = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
SESSIONS = [
    SessionWindow(f"s{n}", DAY + timedelta(days=n), DAY + timedelta(days=n, minutes=30))
    for n in range(3)
]
RULE = CountingRule()
COUNTRIES = ["DE", "FR", "BR", "IN", "US", "NG", "KE", "PH", "MX", "ID"]


def _clock() -> Iterator[datetime]:
    moment = DAY + timedelta(days=3)
    while True:
        yield moment
        moment += timedelta(minutes=1)


def _simulate(count: int, seed: int) -> list[LocationHeartbeats]:
    """Locations joining and leaving each session; some on a flaky link."""
    rng = random.Random(seed)
    locations = []
    for i in range(count):
        every = 120 if rng.random() < 0.05 else 10  # a flaky link sends few heartbeats
        beats: list[datetime] = []
        for session in SESSIONS:
            if rng.random() < 0.2:
                continue
            join = rng.randrange(0, 20 * 60)
            leave = min(30 * 60, join + rng.randrange(2 * 60, 30 * 60))
            beats.extend(session.start + timedelta(seconds=s) for s in range(join, leave, every))
        privacy: PrivacyLevel = "hidden" if rng.random() < 0.03 else "public"
        locations.append(
            LocationHeartbeats(f"loc-{i}", rng.choice(COUNTRIES), privacy, tuple(beats))
        )
    return locations


def _public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclasses.dataclass
class Summit:
    locations: list[LocationHeartbeats]
    key: Ed25519PrivateKey
    lines: list[str]
    path: Path


@pytest.fixture(scope="module")
def summit(tmp_path_factory: pytest.TempPathFactory) -> Summit:
    locations = _simulate(3000, seed=20240717)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    out = io.StringIO()
    clock = _clock()
    write_attendance_log(
        out,
        summit="world-summit-2024",
        locations=locations,
        sessions=SESSIONS,
        rule=RULE,
        audit_secret=SECRET,
        signing_key=key,
        clock=lambda: next(clock),
        head_every=3,
    )
    path = tmp_path_factory.mktemp("audit") / "attendance.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    return Summit(locations, key, out.getvalue().splitlines(keepends=True), path)


@pytest.fixture(scope="module")
def log(summit: Summit) -> AttendanceLog:
    return read_log(summit.path)


def _line_of(lines: list[str], kind: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(lines) if json.loads(line)["type"] == kind][nth]


def test_verify_log_simulated_summit_is_ok_with_exact_figures(summit: Summit) -> None:
    report = verify_log(summit.path, _public_key(summit.key))
    assert report.problems == []
    assert report.ok
    figures = report.figures
    assert figures is not None
    assert (figures.buckets, figures.entries, report.tree_size) == (18, 23735, 23735)
    assert report.heads_checked == 7  # one every 3 buckets, and the final head
    assert (figures.peak_concurrent, figures.peak_bucket_start) == (1942, 1721391300)
    assert (figures.distinct_locations, figures.distinct_countries) == (2959, 10)
    assert figures.average_seconds_watched == 2406
    assert [s.counted_locations for s in figures.sessions] == [2358, 2353, 2387]
    assert figures.countries[-1].country == "other"
    assert figures.countries[-1].locations == 105


def test_verify_log_figures_match_counting_by_location_id(summit: Summit) -> None:
    by_id = summarise(bucketize(summit.locations, SESSIONS, RULE), SESSIONS, RULE)
    report = verify_log(summit.path)
    assert report.figures is not None
    # Pseudonyms and suppression change names, not counts.
    for name in ("entries", "peak_concurrent", "distinct_locations", "average_seconds_watched"):
        assert getattr(report.figures, name) == getattr(by_id, name)
    assert report.figures.concurrent == by_id.concurrent


def test_log_leaf_bytes_equal_canonical_json() -> None:
    entry = LogEntry("0" * 32, "DE")
    assert leaf_bytes(1721217600, entry.pseudonym, entry.country) == canonical_json(
        {"bucket_start": 1721217600, "pseudonym": entry.pseudonym, "country": entry.country}
    )


def test_log_small_countries_and_hidden_hosts_are_zz(summit: Summit, log: AttendanceLog) -> None:
    shown = {e.country for bucket in log.buckets for e in bucket.entries}
    assert shown == {"DE", "FR", "BR", "IN", "US", "NG", "KE", "PH", "MX", "ID", "ZZ"}
    hidden = next(loc for loc in summit.locations if loc.privacy == "hidden")
    mine = pseudonym(SECRET, hidden.location_id)
    assert {e.country for b in log.buckets for e in b.entries if e.pseudonym == mine} <= {"ZZ"}


def _verify(lines: list[str]) -> list[str]:
    report = verify_log(lines)
    assert not report.ok
    return report.problems


def test_verify_log_removed_pseudonym_fails(summit: Summit) -> None:
    lines = list(summit.lines)
    index = _line_of(lines, "bucket", 4)
    record = json.loads(lines[index])
    record["entries"].pop(7)
    lines[index] = json.dumps(record) + "\n"
    problems = _verify(lines)
    assert problems[0] == (
        f"line {index + 3}: tree head signs 7815 entries but 7814 entries precede it: "
        "entries were added or removed after signing"
    )
    assert "published figure entries is 23735 but the entries give 23734" in problems[-1] or any(
        p.endswith("published figure entries is 23735 but the entries give 23734") for p in problems
    )


def test_verify_log_reordered_bucket_fails(summit: Summit) -> None:
    lines = list(summit.lines)
    first = _line_of(lines, "bucket", 0)
    lines[first], lines[first + 1] = lines[first + 1], lines[first]
    problems = _verify(lines)
    assert problems[0] == (
        f"line {first + 2}: bucket 1721217600 (2024-07-17 12:00 UTC) is out of order: "
        f"it does not come after bucket 1721217900 on line {first + 1}"
    )
    assert any("does not match the root recomputed" in p for p in problems)


def test_verify_log_head_resigned_with_another_key_fails(summit: Summit) -> None:
    lines = list(summit.lines)
    index = _line_of(lines, "head", 1)
    record = json.loads(lines[index])
    log = read_log(summit.lines)
    head = SignedTreeHead.from_record(
        record, summit=log.header.summit, header_sha256=log.header.digest()
    )
    intruder = Ed25519PrivateKey.from_private_bytes(bytes(32))
    record["signature"] = dataclasses.replace(
        head, signature=intruder.sign(head.message())
    ).to_record()["signature"]
    lines[index] = json.dumps(record) + "\n"
    assert _verify(lines) == [
        f"line {index + 1}: tree head (size {head.tree_size}) has a signature that does not "
        "verify with the log's public key"
    ]


def test_verify_log_whole_log_signed_by_another_key_fails_expected_key(summit: Summit) -> None:
    intruder = Ed25519PrivateKey.from_private_bytes(bytes(32))
    out = io.StringIO()
    write_attendance_log(
        out,
        summit="world-summit-2024",
        locations=summit.locations[:50],
        sessions=SESSIONS,
        rule=RULE,
        audit_secret=SECRET,
        signing_key=intruder,
    )
    report = verify_log(out.getvalue().splitlines(), _public_key(summit.key))
    assert len(report.problems) == 1
    assert report.problems[0].startswith("line 1: the log's public key ")
    assert report.problems[0].endswith("it was signed by someone else")


def test_verify_log_edited_figure_fails(summit: Summit) -> None:
    lines = list(summit.lines)
    record = json.loads(lines[-1])
    record["figures"]["peak_concurrent"] += 100
    lines[-1] = json.dumps(record) + "\n"
    assert _verify(lines) == [
        f"line {len(lines)}: the final tree head does not sign these figures: "
        "they were edited after signing",
        f"line {len(lines)}: published figure peak_concurrent is 2042 but the entries give 1942",
    ]


def test_verify_log_truncated_file_fails(summit: Summit) -> None:
    text = "".join(summit.lines)
    cut = text[: len(text) // 2]
    problems = _verify(cut.splitlines(keepends=True))
    last_line = cut.count("\n") + 1
    assert problems[0].startswith(f"line {last_line}: not valid JSON")
    assert problems[-1] == (
        f"the log ends at line {last_line} without its figures record: "
        "it is truncated or unfinished"
    )


def test_verify_log_non_json_line_fails(summit: Summit) -> None:
    lines = list(summit.lines)
    lines.insert(2, "hello, auditor\n")
    problems = _verify(lines)
    assert problems == ["line 3: not valid JSON (Expecting value at column 1)"]


def test_verify_log_empty_file_fails() -> None:
    assert verify_log([]).problems == ["the log is empty"]


def test_verify_log_file_reports_progress(summit: Summit) -> None:
    seen: list[tuple[int, int | None]] = []
    report = verify_log_file(summit.path, progress=lambda done, total: seen.append((done, total)))
    assert report.ok
    assert len(seen) == len(summit.lines)
    assert seen[-1] == (summit.path.stat().st_size, summit.path.stat().st_size)


def test_read_log_truncated_file_raises_with_line(summit: Summit) -> None:
    with pytest.raises(ImportFormatError, match="without its figures record"):
        read_log(summit.lines[:-1])


def _present_bucket(log: AttendanceLog, mine: str) -> int:
    return next(b.bucket_start for b in log.buckets if any(e.pseudonym == mine for e in b.entries))


def test_inclusion_proof_for_host_verifies(summit: Summit, log: AttendanceLog) -> None:
    mine = pseudonym(SECRET, "loc-42")
    start = _present_bucket(log, mine)
    proof = inclusion_proof_for(log, mine, start)
    check = verify_inclusion_proof(mine, proof, log.final_head, _public_key(summit.key))
    assert check.ok, check.message
    assert proof.tree_size == 23735
    assert len(proof.path) == 15  # ceil(log2(23735))


def test_inclusion_proof_against_intermediate_head_verifies(log: AttendanceLog) -> None:
    head = log.heads[0]
    first = log.buckets[0]
    mine = first.entries[-1].pseudonym
    proof = inclusion_proof_for(log, mine, first.bucket_start, head)
    assert verify_inclusion_proof(mine, proof, head).ok


def test_inclusion_proof_for_pseudonym_not_in_log_fails(log: AttendanceLog) -> None:
    stranger = pseudonym(SECRET, "never-registered")
    start = log.buckets[0].bucket_start
    with pytest.raises(NotFoundError, match="is not in bucket"):
        inclusion_proof_for(log, stranger, start)
    someone = log.buckets[0].entries[0].pseudonym
    borrowed = inclusion_proof_for(log, someone, start)
    assert verify_inclusion_proof(stranger, borrowed, log.final_head).message == (
        f"the proof is for pseudonym {someone}, not {stranger}"
    )
    forged = dataclasses.replace(borrowed, pseudonym=stranger)
    assert verify_inclusion_proof(stranger, forged, log.final_head).message == (
        "the proof does not lead to the head's root: not included"
    )


def test_host_proof_document_round_trip_verifies(summit: Summit, log: AttendanceLog) -> None:
    mine = pseudonym(SECRET, "loc-7")
    start = _present_bucket(log, mine)
    document = export_host_proof(summit.path, mine, start)
    key = base64.b64encode(_public_key(summit.key)).decode()
    assert check_host_proof(document, mine, key).ok
    assert not check_host_proof(document, pseudonym(SECRET, "loc-8")).ok


def test_check_saved_head_detects_rewrite(summit: Summit, log: AttendanceLog) -> None:
    saved = log.heads[2]
    assert check_saved_head(log, saved).ok
    lines = list(summit.lines)
    index = _line_of(lines, "bucket", 0)
    record = json.loads(lines[index])
    record["entries"].pop(0)
    lines[index] = json.dumps(record) + "\n"
    rewritten = read_log(lines)
    assert check_saved_head(rewritten, saved).message == (
        f"the log was rewritten: its first {saved.tree_size} entries no longer give the saved root"
    )


def test_verify_log_malformed_entry_is_named(summit: Summit) -> None:
    lines = list(summit.lines)
    index = _line_of(lines, "bucket", 0)
    record = json.loads(lines[index])
    record["entries"][0]["country"] = 'D"'
    lines[index] = json.dumps(record) + "\n"
    problems = _verify(lines)
    assert (
        problems[0]
        == f"line {index + 1}: country 'D\"' is not a two-letter code (bucket 1721217600)"
    )


def test_verify_log_country_below_k_is_flagged(summit: Summit) -> None:
    lines = list(summit.lines)
    index = _line_of(lines, "bucket", 0)
    record = json.loads(lines[index])
    record["entries"][0]["country"] = "IS"
    lines[index] = json.dumps(record) + "\n"
    problems = _verify(lines)
    assert (
        "country IS is shown for 1 pseudonyms, fewer than k=5: the log should have suppressed it"
        in problems
    )


def test_verify_log_two_workers_equal_in_process(summit: Summit) -> None:
    serial = verify_log(summit.path, workers=0)
    parallel = verify_log(summit.path, workers=2)
    assert parallel == serial
    assert parallel.ok


def test_verify_log_two_workers_tampered_lines_same_problems(
    summit: Summit, tmp_path: Path
) -> None:
    lines = list(summit.lines)
    # A malformed bucket early on shifts every later worker's guessed leaf position.
    broken = _line_of(lines, "bucket", 1)
    lines[broken] = lines[broken].replace('"country":"', '"country":"X', 1)
    removed = _line_of(lines, "bucket", 6)
    record = json.loads(lines[removed])
    record["entries"].pop(0)
    lines[removed] = json.dumps(record, separators=(",", ":")) + "\n"
    path = tmp_path / "tampered.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    serial = verify_log(path, workers=0)
    parallel = verify_log(path, workers=2)
    assert parallel.problems == serial.problems
    assert parallel.problems[0].startswith(f"line {broken + 1}: country 'X")
    assert len(parallel.problems) == 19
