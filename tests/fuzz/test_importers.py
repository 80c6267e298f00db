"""Schedule files, broken at random, give an ImportFormatError or a document, nothing else.

Three kinds of damage: arbitrary bytes; real frab/pretalx files (JSON, XML) with one value
or element text replaced by something hostile, or with bytes cut, flipped or inserted; and
iCalendar, which summitcast exports but does not read. Through the app (API and the
backstage form, SQLite and PostgreSQL) every such file is answered below 500.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from summitcast.errors import ImportFormatError
from summitcast.interchange import ScheduleDocument, export_ical, parse_schedule
from tests.fuzz.conftest import Run, World, real_ids
from tests.interchange.counting import FIXTURES

JSON_FILES = [FIXTURES / "pretalx-democon-day1.json", FIXTURES / "frab-camp2019-trimmed.json"]
XML_FILES = [FIXTURES / "frab-31c3-trimmed.xml", FIXTURES / "summit-non-latin.xml"]
HOSTILE_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=80),
    st.sampled_from(["\x00", "a\x00b", "\u202e", "x" * 100_000, "0000-00-00", "99:99", "-1"]),
)
# Any JSON value, with integers and strings past what columns and clocks hold.
JSON_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        HOSTILE_TEXT,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@st.composite
def json_schedules(draw: st.DrawFn) -> bytes:
    """A real JSON schedule with one value anywhere in it replaced by any JSON value."""
    document = json.loads(draw(st.sampled_from(JSON_FILES)).read_bytes())
    path = draw(st.sampled_from(_paths(document)))
    return json.dumps(_replace(document, path, draw(JSON_VALUE))).encode()


@st.composite
def xml_schedules(draw: st.DrawFn) -> bytes:
    """A real XML schedule with one element's text or attribute replaced by any text."""
    root = ET.fromstring(draw(st.sampled_from(XML_FILES)).read_bytes())
    element = draw(st.sampled_from(list(root.iter())))
    text = draw(HOSTILE_TEXT)
    if element.attrib and draw(st.booleans()):
        element.set(draw(st.sampled_from(sorted(element.attrib))), text)
    else:
        element.text = text
    # Characters XML cannot hold are written as they are: the reader must refuse them.
    return ET.tostring(root, encoding="utf-8")


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """A real schedule with bytes cut off, overwritten or inserted at one place."""
    data = draw(st.sampled_from(JSON_FILES + XML_FILES)).read_bytes()
    at = draw(st.integers(min_value=0, max_value=len(data)))
    damage = draw(st.sampled_from(["cut", "overwrite", "insert"]))
    noise = draw(st.binary(min_size=1, max_size=16))
    if damage == "cut":
        return data[:at]
    if damage == "overwrite":
        return data[:at] + noise + data[at + len(noise) :]
    return data[:at] + noise + data[at:]


def ical_file() -> bytes:
    """An iCalendar schedule as summitcast exports it."""
    stamp = datetime(2027, 7, 17, tzinfo=UTC)
    document = parse_schedule(XML_FILES[0].read_bytes(), "xml")
    return export_ical(document, stamp=stamp)


SCHEDULES = st.one_of(
    st.binary(max_size=2048),
    json_schedules(),
    xml_schedules(),
    damaged_files(),
    st.just(ical_file()),
)
HINTS = st.sampled_from(["", "json", "xml", "upload.json", "upload.xml", "schedule.ics"])


def fuzz_reader(run: Run) -> None:
    """Read run.examples damaged files: each gives a document or an ImportFormatError."""

    for examples in run.chunks():
        _reader(run, examples)()


def _reader(run: Run, examples: int) -> Callable[[], None]:
    """One Hypothesis run of the reader."""

    @run.settings(examples)
    @given(data=SCHEDULES, hint=HINTS)
    def read(data: bytes, hint: str) -> None:
        run.sent += 1
        try:
            parsed: ScheduleDocument | str = parse_schedule(data, hint)
        except ImportFormatError as error:
            parsed = error.message
        except Exception as error:  # anything else is the finding
            run.failures.append(f"{hint!r} {data[:200]!r}: {error!r}")
            return
        if not isinstance(parsed, ScheduleDocument) and not parsed.strip():
            run.failures.append(f"{hint!r} {data[:200]!r}: an import error without words")

    return read


def fuzz_imports(world: World, run: Run) -> None:
    """Send run.examples damaged files through the API and the backstage form."""
    with world.client() as client:
        for examples in run.chunks():
            _sender(world, client, run, examples)()


def _sender(world: World, client: TestClient, run: Run, examples: int) -> Callable[[], None]:
    """One Hypothesis run of files sent to the app."""

    @run.settings(examples)
    @given(data=SCHEDULES, xml=st.booleans(), form=st.booleans())
    def send(data: bytes, xml: bool, form: bool) -> None:
        slug = real_ids(world.database)["slug"]
        kind = "xml" if xml else "json"
        if form:
            response = client.post(
                f"/backstage/s/{slug}/import",
                files={"file": (f"schedule.{kind}", data)},
                follow_redirects=False,
            )
        else:
            response = client.post(
                f"/api/summits/{slug}/schedule",
                content=data,
                headers={"Content-Type": f"application/{kind}"},
            )
        run.check(response, f"{'form' if form else 'API'} {kind} {data[:200]!r}")

    return send


@pytest.mark.unit
def test_any_file_reads_as_a_schedule_or_an_import_format_error() -> None:
    run = Run(examples=400)

    fuzz_reader(run)

    assert run.sent >= 300
    assert not run.failures, "\n".join(run.failures[:20])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (2**31, "is not a whole number from 0 to 2147483647"),
        ("²", "is not a whole number from 0 to 2147483647"),
        (-1, "is not a whole number from 0 to 2147483647"),
    ],
)
def test_event_ids_past_the_id_column_are_import_errors(value: object, reason: str) -> None:
    document = json.loads(JSON_FILES[0].read_bytes())
    path = next(p for p in _paths(document) if p[-1:] == ("id",) and "rooms" in p)

    with pytest.raises(ImportFormatError) as caught:
        parse_schedule(json.dumps(_replace(document, path, value)).encode(), "json")

    assert reason in caught.value.message
    assert str(caught.value.field).endswith(".id")


@pytest.mark.unit
def test_an_ical_file_is_refused_with_the_formats_we_read() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_schedule(ical_file(), "")

    assert "expected frab JSON (.json) or frab XML (.xml)" in caught.value.message


@pytest.mark.integration
def test_imported_files_are_answered_below_500(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(examples=60)

    with caplog.at_level(logging.ERROR):
        fuzz_imports(world, run)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]

    assert run.sent >= 50
    assert not run.failures, f"{len(run.failures)} answers of 500 or more:\n" + "\n".join(
        run.failures[:20]
    )
    assert not tracebacks, f"{len(tracebacks)} tracebacks logged: {tracebacks[:5]}"
