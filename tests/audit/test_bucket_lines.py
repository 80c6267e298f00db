"""The fixed-width fast path of bucket lines agrees with the JSON parser, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from summitcast.audit.bucket_lines import (
    entries_by_length,
    expected_entries,
    hash_bucket_line,
    parse_bucket_line,
)
from summitcast.audit.log import leaf_hashes, parse_bucket_columns
from summitcast.audit.merkle import compact_range
from summitcast.audit.verify import verify_log
from summitcast.errors import ValidationError

from .test_log_verify import Summit, summit  # noqa: F401 - the fixture is shared

START = 1721217600


def _line(entries: list[tuple[str, str]], start: int = START) -> bytes:
    record = {
        "type": "bucket",
        "bucket_start": start,
        "entries": [{"pseudonym": p, "country": c} for p, c in entries],
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


ENTRIES = [(f"{i:032x}", "DE" if i % 3 else "ZZ") for i in range(1, 200, 7)]


def test_parse_bucket_line_fast_path_equals_json_parser() -> None:
    line = _line(ENTRIES)
    assert parse_bucket_line(line) == parse_bucket_columns(json.loads(line))


def test_parse_bucket_line_spelt_with_spaces_gives_the_same_columns() -> None:
    spaced = (json.dumps(json.loads(_line(ENTRIES))) + "\n").encode()
    assert parse_bucket_line(spaced) == parse_bucket_line(_line(ENTRIES))


def test_entries_by_length_matches_the_entry_count() -> None:
    for entries in (ENTRIES, ENTRIES[:1], []):
        line = _line(entries)
        assert entries_by_length(line[:128], line[-4:], len(line)) == len(entries)
        assert expected_entries(line) == len(entries)


def test_entries_by_length_other_spelling_is_none() -> None:
    spaced = (json.dumps(json.loads(_line(ENTRIES))) + "\n").encode()
    assert entries_by_length(spaced[:128], spaced[-4:], len(spaced)) is None


def test_entries_by_length_crlf_and_no_newline() -> None:
    line = _line(ENTRIES).rstrip(b"\n")
    assert entries_by_length(line[:128], line[-4:], len(line)) == len(ENTRIES)
    crlf = line + b"\r\n"
    assert entries_by_length(crlf[:128], crlf[-4:], len(crlf)) == len(ENTRIES)


def test_parse_bucket_line_unsorted_names_the_entry() -> None:
    swapped = [ENTRIES[1], ENTRIES[0], *ENTRIES[2:]]
    with pytest.raises(ValidationError) as caught:
        parse_bucket_line(_line(swapped))
    assert caught.value.message == (
        f"entries not strictly sorted by pseudonym at {ENTRIES[0][0]} (bucket {START})"
    )


def test_parse_bucket_line_duplicate_pseudonym_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_bucket_line(_line([ENTRIES[0], ENTRIES[0]]))
    assert "not strictly sorted" in caught.value.message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b'"country":"DE"', b'"country":"De"', "country 'De' is not a two-letter code"),
        (b'"pseudonym":"0', b'"pseudonym":"G', "is not 32 lowercase hex digits"),
    ],
)
def test_parse_bucket_line_bad_value_in_fixed_width_is_named(
    old: bytes, new: bytes, message: str
) -> None:
    line = _line(ENTRIES).replace(old, new, 1)
    with pytest.raises(ValidationError) as caught:
        parse_bucket_line(line)
    assert message in caught.value.message


def test_hash_bucket_line_gives_the_subtrees_of_its_leaves() -> None:
    hashed = hash_bucket_line(_line(ENTRIES), 5)
    assert not isinstance(hashed, str)
    pseudonyms, countries = [p for p, _ in ENTRIES], [c for _, c in ENTRIES]
    assert hashed.subtrees == compact_range(leaf_hashes(START, pseudonyms, countries), 5)
    assert hashed.columns() == (pseudonyms, countries)


def test_verify_log_workers_read_crlf_file_without_final_newline(
    summit: Summit,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes("".join(summit.lines).replace("\n", "\r\n").rstrip("\r\n").encode())
    serial = verify_log(path, workers=0)
    parallel = verify_log(path, workers=2)
    assert serial.ok, serial.problems
    assert parallel == serial


def test_verify_log_workers_take_other_spellings_through_the_parser(
    summit: Summit,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = [
        json.dumps(json.loads(line)) + "\n" if line.startswith('{"type":"bucket"') else line
        for line in summit.lines
    ]
    path = tmp_path / "spaced.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    parallel = verify_log(path, workers=2)
    assert parallel.ok, parallel.problems
    assert parallel == verify_log(summit.path, workers=0)


def test_verify_log_workers_truncated_log_after_a_malformed_bucket(
    summit: Summit,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = list(summit.lines)
    buckets = [i for i, line in enumerate(lines) if line.startswith('{"type":"bucket"')]
    # A malformed line shifts the guessed positions of the lines sent after it; the log
    # stops two buckets later, so those lines are still in flight when the file ends.
    lines[buckets[-3]] = lines[buckets[-3]].replace('"country":"', '"country":"X', 1)
    path = tmp_path / "truncated.jsonl"
    path.write_text("".join(lines[: buckets[-1] + 1]), encoding="utf-8")

    serial = verify_log(path, workers=0)
    parallel = verify_log(path, workers=2)

    assert parallel.problems == serial.problems
    assert parallel.problems[-1] == (
        f"the log ends at line {buckets[-1] + 1} without its figures record: "
        "it is truncated or unfinished"
    )
