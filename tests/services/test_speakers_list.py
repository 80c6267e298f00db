"""The organisers' speaker list: paged, found by name or role, sorted, counted."""

from __future__ import annotations

import pytest

from summitcast.errors import ValidationError
from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import make_summit

pytestmark = pytest.mark.integration


def _add(database: Database, slug: str, *people: tuple[str, str, str]) -> None:
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        for name, role, country in people:
            programme.add_speaker(
                db, summit, programme.SpeakerInput(name=name, role_line=role, country=country)
            )


def _page(database: Database, slug: str = "test-summit", **kwargs: object) -> speakers.SpeakerPage:
    with database.session() as db:
        summit: Summit = programme.get_summit(db, slug)
        return speakers.page_of_speakers(db, summit, **kwargs)  # type: ignore[arg-type]


def test_page_of_speakers_finds_by_name_or_role_and_counts(database: Database) -> None:
    make_summit(database)
    make_summit(database, "other")
    _add(
        database,
        "test-summit",
        ("Ana Souza", "Minister of Health", "BR"),
        ("ليلى الحسيني", "Journalist", "JO"),
        ("Bo Chen", "Health reporter", "CN"),
    )
    _add(database, "other", ("Ana Other", "", "FR"))

    health = _page(database, text="HEALTH")
    arabic = _page(database, text="ليلى")
    everyone = _page(database)

    assert [s.name for s in health.rows] == ["Ana Souza", "Bo Chen"]
    assert (health.page.total, health.summit_total) == (2, 3)
    assert [s.name for s in arabic.rows] == ["ليلى الحسيني"]
    assert everyone.page.label == "showing 1–3 of 3"


def test_page_of_speakers_pages_and_sorts(database: Database) -> None:
    make_summit(database)
    _add(database, "test-summit", *((f"Speaker {n:03d}", "", "KE") for n in range(120)))
    _add(database, "test-summit", ("aaron", "", "ZA"), ("Zoe", "", "AR"))

    first = _page(database)
    last = _page(database, page=3)
    newest = _page(database, sort="newest", size=100)
    by_country = _page(database, sort="country")

    assert [s.name for s in first.rows][:2] == ["aaron", "Speaker 000"]
    assert len(first.rows) == 50
    assert [s.name for s in last.rows][-2:] == ["Speaker 119", "Zoe"]
    assert last.page.label == "showing 101–122 of 122"
    assert [s.name for s in newest.rows][:2] == ["Zoe", "aaron"]
    assert [s.name for s in by_country.rows][:2] == ["Zoe", "Speaker 000"]


def test_page_of_speakers_refuses_an_unknown_sort(database: Database) -> None:
    make_summit(database)

    with pytest.raises(ValidationError) as caught:
        _page(database, sort="height")

    assert caught.value.field == "sort"
