"""`summitcast audit verify | prove | check-proof` on a small simulated summit's log."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from summitcast.audit.live import LiveLog, read_heads
from summitcast.audit.log import SignedTreeHead, pseudonym, read_log, write_attendance_log
from summitcast.cli.main import app, main
from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow
from summitcast.reports.simulate import simulate_summit
from tests.cli.installed import assert_one_plain_line, summitcast

pytestmark = pytest.mark.unit

SECRET = b"audit cli test secret"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
runner = CliRunner()


@pytest.fixture(scope="module")
def log_lines() -> list[str]:
    summit = simulate_summit(400, sessions_per_day=2, session_minutes=30, seed=6)
    ticks = count()
    out = io.StringIO()
    write_attendance_log(
        out,
        summit=summit.slug,
        locations=summit.heartbeats(),
        sessions=summit.sessions,
        rule=CountingRule(),
        audit_secret=SECRET,
        signing_key=KEY,
        clock=lambda: datetime.fromtimestamp(1_721_300_000 + 60 * next(ticks), UTC),
        head_every=3,
    )
    return out.getvalue().splitlines(keepends=True)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "attendance.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _kind_index(lines: list[str], kind: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(lines) if json.loads(line)["type"] == kind][nth]


def test_audit_verify_ok_log_exits_0_with_figures(tmp_path: Path, log_lines: list[str]) -> None:
    path = _write(tmp_path, log_lines)
    figures = json.loads(log_lines[-1])["figures"]
    result = runner.invoke(app, ["audit", "verify", str(path), "--public-key", PUBLIC])
    assert result.exit_code == 0, result.output
    assert (
        f"OK: {figures['entries']} entries, 5 signed tree heads and every published figure "
        "recomputed\n"
    ) in result.output
    assert f"│ distinct locations               │ {figures['distinct_locations']}" in result.output
    assert f"│ peak concurrent locations        │ {figures['peak_concurrent']} at" in result.output


def test_audit_verify_removed_pseudonym_exits_1(tmp_path: Path, log_lines: list[str]) -> None:
    lines = list(log_lines)
    index = _kind_index(lines, "bucket", 1)
    record = json.loads(lines[index])
    record["entries"].pop(3)
    lines[index] = json.dumps(record) + "\n"
    result = runner.invoke(app, ["audit", "verify", str(_write(tmp_path, lines)), "--no-progress"])
    assert result.exit_code == 1
    assert "FAILED" in result.output
    assert "entries were added or removed after signing" in result.output


def test_audit_verify_reordered_bucket_exits_1(tmp_path: Path, log_lines: list[str]) -> None:
    lines = list(log_lines)
    first = _kind_index(lines, "bucket", 0)
    lines[first], lines[first + 1] = lines[first + 1], lines[first]
    result = runner.invoke(app, ["audit", "verify", str(_write(tmp_path, lines))])
    assert result.exit_code == 1
    second = json.loads(lines[first])["bucket_start"]
    assert (
        f"line {first + 2}: bucket {second - 300} (2024-07-17 10:00 UTC) is out of order: it "
        f"does not come after bucket {second} on line {first + 1}"
    ) in result.output


def test_audit_verify_head_resigned_with_other_key_exits_1(
    tmp_path: Path, log_lines: list[str]
) -> None:
    lines = list(log_lines)
    index = _kind_index(lines, "head", 0)
    record = json.loads(lines[index])
    log = read_log(log_lines)
    head = SignedTreeHead.from_record(
        record, summit=log.header.summit, header_sha256=log.header.digest()
    )
    intruder = Ed25519PrivateKey.from_private_bytes(bytes(32))
    resigned = dataclasses.replace(head, signature=intruder.sign(head.message()))
    lines[index] = json.dumps({"type": "head", **resigned.to_record()}) + "\n"
    result = runner.invoke(app, ["audit", "verify", str(_write(tmp_path, lines))])
    assert result.exit_code == 1
    assert (
        f"line {index + 1}: tree head (size {head.tree_size}) has a signature that does not "
        "verify with the log's public key"
    ) in result.output


def test_audit_verify_other_public_key_exits_1(tmp_path: Path, log_lines: list[str]) -> None:
    other = base64.b64encode(bytes(32)).decode()
    result = runner.invoke(
        app, ["audit", "verify", str(_write(tmp_path, log_lines)), "--public-key", other]
    )
    assert result.exit_code == 1
    assert "it was signed by someone else" in result.output


def test_audit_prove_then_check_proof_includes_host(tmp_path: Path, log_lines: list[str]) -> None:
    path = _write(tmp_path, log_lines)
    mine = pseudonym(SECRET, "loc-000007")
    log = read_log(path)
    bucket = next(
        b.bucket_start for b in log.buckets if any(e.pseudonym == mine for e in b.entries)
    )
    when = datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%dT%H:%MZ")
    proof = tmp_path / "proof.json"
    made = runner.invoke(
        app, ["audit", "prove", str(path), "--pseudonym", mine, "--bucket", when, "-o", str(proof)]
    )
    assert made.exit_code == 0, made.output
    root = log.final_head.root_hash.hex()
    args = ["--pseudonym", mine, "--public-key", PUBLIC, "--root", root]
    checked = runner.invoke(app, ["audit", "check-proof", str(proof), *args])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith(f"INCLUDED: {mine} (")


def test_audit_check_proof_other_pseudonym_or_root_exits_1(
    tmp_path: Path, log_lines: list[str]
) -> None:
    path = _write(tmp_path, log_lines)
    log = read_log(path)
    first = log.buckets[0]
    someone = first.entries[0].pseudonym
    proof = tmp_path / "proof.json"
    args = ["--pseudonym", someone, "--bucket", str(first.bucket_start), "-o", str(proof)]
    assert runner.invoke(app, ["audit", "prove", str(path), *args]).exit_code == 0
    stranger = pseudonym(SECRET, "never-registered")
    wrong_host = runner.invoke(app, ["audit", "check-proof", str(proof), "--pseudonym", stranger])
    assert wrong_host.exit_code == 1
    assert wrong_host.output == (
        f"NOT INCLUDED: the proof is for pseudonym {someone}, not {stranger}\n"
    )
    wrong_root = runner.invoke(
        app, ["audit", "check-proof", str(proof), "--pseudonym", someone, "--root", "00" * 32]
    )
    assert wrong_root.exit_code == 1
    assert "not the published root " + "00" * 32 in wrong_root.output


def _live_log(folder: Path, buckets: int, *, finish: bool = True) -> Path:
    """A live log of `buckets` buckets of five DE locations, a head after each."""
    start = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
    session = SessionWindow("session-1", start, start + timedelta(hours=1))
    path = folder / "live.jsonl"
    live = LiveLog.create(
        path, summit="cli", rule=CountingRule(), sessions=[session], signing_key=KEY, created=start
    )
    tally = AttendanceTally([session], CountingRule())
    for b in range(buckets):
        names = [pseudonym(SECRET, f"loc-{i}") for i in range(5 + b)]
        entries = live.decide_countries(dict.fromkeys(names, "DE"))
        bucket_start = int(start.timestamp()) + 300 * b
        live.append_bucket(bucket_start, entries)
        tally.add_columns(bucket_start, sorted(entries), [entries[n] for n in sorted(entries)])
        live.sign_head(KEY, lambda b=b: start + timedelta(minutes=5 * b + 6))
    if finish:
        live.finish(tally.figures(), KEY, lambda: start + timedelta(hours=2))
    return path


def test_audit_verify_saved_heads_chain_into_the_log_exits_0(tmp_path: Path) -> None:
    path = _live_log(tmp_path, 3)
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"heads": [h.to_json() for h in read_heads(path)]}))

    result = runner.invoke(
        app, ["audit", "verify", str(path), "--heads", str(heads), "--no-progress"]
    )

    assert result.exit_code == 0, result.output
    assert "OK: 18 entries, 4 signed tree heads" in result.output


def test_audit_verify_heads_of_a_rewritten_log_exit_1(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    saved = read_heads(_live_log(tmp_path / "first", 3))
    # The organiser rewrites the log: the same first buckets, then others.
    rewritten = _live_log(tmp_path / "second", 2)
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"heads": [h.to_json() for h in saved]}))

    result = runner.invoke(
        app, ["audit", "verify", str(rewritten), "--heads", str(heads), "--no-progress"]
    )

    assert result.exit_code == 1
    assert "published head 3 (size 18, 2024-07-17T12:16:00+00:00) is not among the log's heads" in (
        result.output
    )


def test_audit_verify_malformed_heads_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _live_log(tmp_path, 1)
    heads = tmp_path / "heads.json"
    heads.write_text("[{]")
    argv = ["summitcast", "audit", "verify", str(path), "--heads", str(heads), "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)

    with pytest.raises(SystemExit) as exited:
        main()

    output = capsys.readouterr()
    assert exited.value.code == 2
    assert "heads.json is not a heads.json document" in output.err + output.out
    assert "Traceback" not in output.err + output.out


def test_audit_verify_live_log_during_the_event(tmp_path: Path) -> None:
    path = _live_log(tmp_path, 2, finish=False)
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps({"heads": [h.to_json() for h in read_heads(path)]}))

    live = runner.invoke(
        app, ["audit", "verify", str(path), "--live", "--heads", str(heads), "--no-progress"]
    )
    strict = runner.invoke(app, ["audit", "verify", str(path), "--no-progress"])

    assert live.exit_code == 0, live.output
    assert "OK: 11 entries and 2 signed tree heads so far (a live log: no figures" in live.output
    assert strict.exit_code == 1
    assert "without its figures record: it is truncated or unfinished" in strict.output


def _one_byte_changed(lines: list[str]) -> list[str]:
    """The log with the last hex digit of the first bucket's first pseudonym changed."""
    index = _kind_index(lines, "bucket", 0)
    name = json.loads(lines[index])["entries"][0]["pseudonym"]
    at = lines[index].index(name) + len(name) - 1
    changed = "0" if lines[index][at] != "0" else "1"
    return [
        *lines[:index],
        lines[index][:at] + changed + lines[index][at + 1 :],
        *lines[index + 1 :],
    ]


def test_installed_audit_verify_good_log_exits_0(tmp_path: Path, log_lines: list[str]) -> None:
    done = summitcast("audit", "verify", _write(tmp_path, log_lines), "--key", PUBLIC, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.lstrip().startswith("OK: ")
    assert done.stderr == ""


def test_installed_audit_verify_one_byte_changed_exits_1(
    tmp_path: Path, log_lines: list[str]
) -> None:
    path = _write(tmp_path, _one_byte_changed(log_lines))
    original = "".join(log_lines).encode()
    assert sum(a != b for a, b in zip(path.read_bytes(), original, strict=True)) == 1

    done = summitcast("audit", "verify", path, "--key", PUBLIC, "--no-progress", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout.startswith("FAILED: ")
    line = assert_one_plain_line(done.stderr)
    assert line.startswith(f"error: {path} did not verify (")


def test_installed_audit_verify_wrong_key_exits_1(tmp_path: Path, log_lines: list[str]) -> None:
    other = base64.b64encode(bytes(32)).decode()

    done = summitcast("audit", "verify", _write(tmp_path, log_lines), "--key", other, cwd=tmp_path)

    assert done.returncode == 1
    assert "it was signed by someone else" in done.stdout
    assert_one_plain_line(done.stderr)


def test_installed_audit_verify_file_that_is_no_log_exits_1(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n", encoding="utf-8")

    done = summitcast("audit", "verify", notes, "--no-progress", cwd=tmp_path)

    assert done.returncode == 1
    assert "line 1: not valid JSON" in done.stdout
    assert assert_one_plain_line(done.stderr) == f"error: {notes} did not verify (1 problem)"


def test_installed_audit_verify_missing_file_exits_2(tmp_path: Path) -> None:
    done = summitcast("audit", "verify", "nowhere.jsonl", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "'nowhere.jsonl' does not exist" in assert_one_plain_line(done.stderr)


def test_installed_audit_check_proof_not_included_exits_1(
    tmp_path: Path, log_lines: list[str]
) -> None:
    path = _write(tmp_path, log_lines)
    first = read_log(path).buckets[0]
    proof = tmp_path / "proof.json"
    someone = first.entries[0].pseudonym
    args = ["--pseudonym", someone, "--bucket", str(first.bucket_start), "-o", str(proof)]
    assert summitcast("audit", "prove", path, *args, cwd=tmp_path).returncode == 0
    stranger = pseudonym(SECRET, "never-registered")

    done = summitcast("audit", "check-proof", proof, "--pseudonym", stranger, cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    assert assert_one_plain_line(done.stderr) == (
        f"NOT INCLUDED: the proof is for pseudonym {someone}, not {stranger}"
    )
