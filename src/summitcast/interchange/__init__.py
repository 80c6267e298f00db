"""Schedule interchange: frab/pretalx JSON and XML in and out, iCalendar out; no database."""

from __future__ import annotations

from summitcast.interchange.frab_json import export_frab_json, load_schema, parse_frab_json
from summitcast.interchange.frab_xml import export_frab_xml, parse_frab_xml
from summitcast.interchange.ical import export_ical
from summitcast.interchange.model import (
    KINDS,
    ScheduleDocument,
    ScheduleItem,
    SchedulePerson,
    ScheduleSession,
)
from summitcast.interchange.reader import parse_schedule

__all__ = [
    "KINDS",
    "ScheduleDocument",
    "ScheduleItem",
    "SchedulePerson",
    "ScheduleSession",
    "export_frab_json",
    "export_frab_xml",
    "export_ical",
    "load_schema",
    "parse_frab_json",
    "parse_frab_xml",
    "parse_schedule",
]
