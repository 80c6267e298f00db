"""Broken, hostile and oddly typed input gives one clear ImportFormatError."""

from __future__ import annotations

import json
import random

import pytest

from summitcast.errors import ImportFormatError
from summitcast.interchange import parse_frab_json, parse_frab_xml, parse_schedule
from summitcast.interchange.assembly import human_size
from tests.interchange.counting import FIXTURES

DEMOCON = (FIXTURES / "pretalx-democon-day1.json").read_bytes()
NON_LATIN = (FIXTURES / "summit-non-latin.xml").read_bytes()


def _democon_with(change) -> bytes:  # type: ignore[no-untyped-def]
    raw = json.loads(DEMOCON)
    change(raw)
    return json.dumps(raw).encode()


def _message(read, data: bytes) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportFormatError) as caught:
        read(data)
    return caught.value.message


@pytest.mark.unit
def test_parse_frab_json_syntax_error_names_line_and_column() -> None:
    message = _message(parse_frab_json, b'{\n  "schedule": {\n    "version": 1,,\n')

    assert (
        message == "JSON syntax error at line 3, column 18: "
        "Expecting property name enclosed in double quotes"
    )


@pytest.mark.unit
def test_parse_frab_json_bad_duration_names_field_path() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        raw["schedule"]["conference"]["days"][0]["rooms"]["Tan Room"][2]["duration"] = "abc"

    message = _message(parse_frab_json, _democon_with(change))

    assert message == (
        'schedule.conference.days[0].rooms["Tan Room"][2].duration: "abc" is not HH:MM'
    )


@pytest.mark.unit
def test_parse_frab_json_days_as_string_is_a_type_error() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        raw["schedule"]["conference"]["days"] = "monday"

    message = _message(parse_frab_json, _democon_with(change))

    assert message == "schedule.conference.days: expected an array, found a string"


@pytest.mark.unit
def test_parse_frab_json_missing_title_names_field() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        del raw["schedule"]["conference"]["days"][0]["rooms"]["Gray Room"][1]["title"]

    message = _message(parse_frab_json, _democon_with(change))

    assert (
        message
        == 'schedule.conference.days[0].rooms["Gray Room"][1].title: required field is missing'
    )


@pytest.mark.unit
def test_parse_frab_json_unknown_time_zone_is_refused() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        raw["schedule"]["conference"]["time_zone_name"] = "Mars/Olympus_Mons"

    message = _message(parse_frab_json, _democon_with(change))

    assert message == (
        'schedule.conference.time_zone_name: "Mars/Olympus_Mons" is not a known IANA time zone'
    )


@pytest.mark.unit
def test_parse_frab_json_bad_start_names_field() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        event = raw["schedule"]["conference"]["days"][0]["rooms"]["Gray Room"][0]
        del event["date"]
        event["start"] = "25:99"

    message = _message(parse_frab_json, _democon_with(change))

    assert message == (
        'schedule.conference.days[0].rooms["Gray Room"][0].start: "25:99" is not HH:MM '
        "or an ISO date-time"
    )


@pytest.mark.unit
def test_parse_frab_json_top_level_array_is_refused() -> None:
    assert _message(parse_frab_json, b"[]") == "document: expected an object, found an array"


@pytest.mark.unit
def test_parse_frab_json_non_utf8_names_byte_and_line() -> None:
    data = b'{\n  "schedule": "caf\xe9"\n}'

    assert _message(parse_frab_json, data) == ("JSON is not UTF-8: byte 0xe9 at line 2, column 19")


@pytest.mark.unit
def test_parse_frab_json_over_max_bytes_is_refused() -> None:
    message = _message(lambda data: parse_frab_json(data, max_bytes=1000), DEMOCON)

    assert message == (
        f"The schedule is {human_size(len(DEMOCON))}; schedules of at most 1000 bytes are accepted."
    )


@pytest.mark.unit
def test_parse_frab_json_string_do_not_record_and_missing_flag_are_read() -> None:
    def change(raw):  # type: ignore[no-untyped-def]
        events = raw["schedule"]["conference"]["days"][0]["rooms"]["Gray Room"]
        events[0]["do_not_record"] = "true"
        del events[1]["do_not_record"]
        events[2]["do_not_record"] = "maybe"

    message = _message(parse_frab_json, _democon_with(change))

    assert message == (
        'schedule.conference.days[0].rooms["Gray Room"][2].do_not_record: "maybe" is not '
        "true or false"
    )


@pytest.mark.unit
def test_parse_frab_xml_broken_markup_names_line() -> None:
    data = (
        b"<schedule>\n<conference><title>x</title></conference>\n"
        b"<day date='2020-01-01'>\n</schedule>"
    )

    assert _message(parse_frab_xml, data) == "XML line 4, column 3: mismatched tag"


@pytest.mark.unit
def test_parse_frab_xml_billion_laughs_is_refused_not_expanded() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE schedule [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<schedule><conference><title>&lol2;</title></conference></schedule>"""

    message = _message(parse_frab_xml, data)

    assert message == (
        "XML line 3: declares the entity “lol”; schedules may not declare entities or "
        "reference external resources"
    )


@pytest.mark.unit
def test_parse_frab_xml_external_entity_is_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE schedule [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<schedule><conference><title>&secret;</title></conference></schedule>"""

    message = _message(parse_frab_xml, data)

    assert message.startswith("XML line 2: declares the entity “secret”;")


@pytest.mark.unit
def test_parse_frab_xml_bad_duration_names_event_line() -> None:
    data = NON_LATIN.replace(b"<duration>00:20</duration>", b"<duration>twenty</duration>")

    message = _message(parse_frab_xml, data)

    assert message == 'XML line 40: <event> duration: "twenty" is not HH:MM'


@pytest.mark.unit
def test_parse_frab_xml_unknown_time_zone_is_refused() -> None:
    data = NON_LATIN.replace(b"Asia/Kolkata", b"Asia/Atlantis")

    message = _message(parse_frab_xml, data)

    assert message == (
        'XML line 6: <conference> time_zone_name: "Asia/Atlantis" is not a known IANA time zone'
    )


@pytest.mark.unit
def test_parse_frab_xml_non_utf8_bytes_are_refused() -> None:
    data = NON_LATIN.replace("Анна".encode(), b"\xc0\xc1nna", 1)

    message = _message(parse_frab_xml, data)

    assert message == "XML line 53, column 26: not well-formed (invalid token)"


@pytest.mark.unit
def test_parse_frab_xml_wrong_root_is_refused() -> None:
    message = _message(parse_frab_xml, b"<html><body/></html>")

    assert message == (
        "XML line 1: <html> is not a frab schedule: the root element must be <schedule>"
    )


@pytest.mark.unit
def test_parse_schedule_unknown_format_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_schedule(b"BEGIN:VCALENDAR", "programme.ics")

    assert caught.value.message == (
        "cannot tell the schedule format of 'programme.ics': expected frab JSON (.json) "
        "or frab XML (.xml)"
    )


@pytest.mark.unit
def test_parse_schedule_sniffs_content_without_suffix() -> None:
    assert parse_schedule(NON_LATIN, "upload") == parse_frab_xml(NON_LATIN)
    assert parse_schedule(DEMOCON, "upload") == parse_frab_json(DEMOCON)


def _mutations(data: bytes, seed: int, count: int) -> list[bytes]:
    """Randomly damaged copies of `data`: flipped, dropped, duplicated and swapped bytes."""
    rng = random.Random(seed)
    results = []
    for _ in range(count):
        buffer = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(buffer))
            action = rng.randrange(4)
            if action == 0:
                buffer[at] = rng.randrange(256)
            elif action == 1:
                del buffer[at : at + rng.randint(1, 40)]
            elif action == 2:
                buffer[at:at] = buffer[at : at + rng.randint(1, 40)]
            else:
                buffer[at] = rng.choice(b'{}[]<>":,0 \n')
        results.append(bytes(buffer))
    return results


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("pretalx-democon-day1.json", parse_frab_json),
        ("frab-camp2019-trimmed.json", parse_frab_json),
        ("frab-31c3-trimmed.xml", parse_frab_xml),
        ("summit-non-latin.xml", parse_frab_xml),
    ],
)
def test_parse_mutated_real_files_raise_only_import_format_error(name: str, read) -> None:  # type: ignore[no-untyped-def]
    data = (FIXTURES / name).read_bytes()
    unclear = []
    for mutated in _mutations(data, seed=len(name), count=300):
        try:
            read(mutated)
        except ImportFormatError as exc:
            if not exc.message:
                unclear.append(mutated)
    # Anything but ImportFormatError escapes the loop above and fails the test.
    assert unclear == []


def _replace_random_node(raw: object, rng: random.Random) -> object:
    """Swap one randomly chosen value deep in a JSON tree for a value of another type."""
    replacements: list[object] = [None, 0, -1, 1.5, True, "", "x", [], {}, ["a"], {"k": 1}]
    node = raw
    while True:
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            if rng.random() < 0.3 or not isinstance(node[key], dict | list):
                node[key] = rng.choice(replacements)
                return raw
            node = node[key]
        elif isinstance(node, list) and node:
            index = rng.randrange(len(node))
            if rng.random() < 0.3 or not isinstance(node[index], dict | list):
                node[index] = rng.choice(replacements)
                return raw
            node = node[index]
        else:
            return raw


@pytest.mark.unit
def test_parse_frab_json_wrongly_typed_values_raise_only_import_format_error() -> None:
    rng = random.Random(5545)
    for _ in range(400):
        mutated = _replace_random_node(json.loads(DEMOCON), rng)
        try:
            parse_frab_json(json.dumps(mutated).encode())
        except ImportFormatError as exc:
            assert exc.message  # noqa: PT017 - every refusal must say something
