"""Pick the schedule reader for a file by its name, format word or first byte."""

from __future__ import annotations

from summitcast.errors import ImportFormatError
from summitcast.interchange.assembly import DEFAULT_MAX_BYTES, check_size
from summitcast.interchange.frab_json import parse_frab_json
from summitcast.interchange.frab_xml import parse_frab_xml
from summitcast.interchange.model import ScheduleDocument


def parse_schedule(
    data: bytes, filename_or_format: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ScheduleDocument:
    """Read a frab JSON or frab XML schedule, chosen by "json"/"xml", file suffix or content."""
    check_size(data, max_bytes)
    hint = filename_or_format.strip().lower()
    if hint in ("json", "frab-json") or hint.endswith(".json"):
        return parse_frab_json(data, max_bytes=max_bytes)
    if hint in ("xml", "frab-xml") or hint.endswith(".xml"):
        return parse_frab_xml(data, max_bytes=max_bytes)
    first = bytes(data[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"{":
        return parse_frab_json(data, max_bytes=max_bytes)
    if first == b"<":
        return parse_frab_xml(data, max_bytes=max_bytes)
    raise ImportFormatError(
        f"cannot tell the schedule format of {filename_or_format!r}: "
        "expected frab JSON (.json) or frab XML (.xml)"
    )
