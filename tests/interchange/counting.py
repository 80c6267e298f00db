"""Independent counts of real fixture files, walked raw (not through summitcast's readers)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Counts:
    days: int
    sessions: int
    items: int
    people: int


def _person_identity(guid: str | None, pid: object, name: str) -> str:
    if guid:
        return f"guid:{guid}"
    if pid not in (None, ""):
        return f"id:{pid}"
    return "name:" + " ".join(name.casefold().split())


def count_json(name: str) -> Counts:
    raw = json.loads((FIXTURES / name).read_text("utf-8"))
    days, sessions, items, people = set(), set(), 0, set()
    for day in raw["schedule"]["conference"]["days"]:
        for room, events in day["rooms"].items():
            if events:
                days.add(day["date"])
                sessions.add((day["date"], room))
            for event in events:
                items += 1
                for person in event.get("persons", []):
                    people.add(
                        _person_identity(
                            person.get("guid"),
                            person.get("id"),
                            person.get("public_name") or person.get("name", ""),
                        )
                    )
    return Counts(len(days), len(sessions), items, len(people))


def count_xml(name: str) -> Counts:
    root = ET.fromstring((FIXTURES / name).read_bytes())
    days, sessions, items, people = set(), set(), 0, set()
    for day in root.iter("day"):
        for room in day.iter("room"):
            events = room.findall("event")
            if events:
                days.add(day.get("date"))
                sessions.add((day.get("date"), room.get("name")))
            for event in events:
                items += 1
                for person in event.iter("person"):
                    people.add(_person_identity(person.get("guid"), person.get("id"), person.text))
    return Counts(len(days), len(sessions), items, len(people))
