"""The |flag filter: flag images named for screen readers, never emoji; code badges without one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pycountry
import pytest
from fastapi.testclient import TestClient

from summitcast.services import programme
from summitcast.storage.database import Database
from summitcast.web.templating import FLAGS, flag_codes, make_flag_filter
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

# Regional indicator symbols: two of them make a flag emoji, boxes without an emoji font.
REGIONAL_INDICATORS = re.compile("[\U0001f1e6-\U0001f1ff]")


def test_flag_is_an_image_named_by_the_country() -> None:
    flag = make_flag_filter(frozenset({"BR", "CI"}))

    assert flag("br") == (
        '<img class="sc-flag" src="/static/build/flags/br.svg" alt="Brazil" title="Brazil"'
        ' width="20" height="15" loading="lazy" decoding="async">'
    )
    assert 'alt="Côte d&#39;Ivoire"' in flag("CI")  # names are escaped like any text


def test_flag_beside_the_name_is_decoration() -> None:
    flag = make_flag_filter(frozenset({"BR"}))

    assert flag("BR", decorative=True) == (
        '<img class="sc-flag" src="/static/build/flags/br.svg" alt=""'
        ' width="20" height="15" loading="lazy" decoding="async">'
    )


def test_flag_without_an_image_is_a_code_badge() -> None:
    flag = make_flag_filter(frozenset())

    assert flag("KE") == (
        '<span class="sc-flag sc-flag-code" role="img" aria-label="Kenya">KE</span>'
    )
    assert flag("KE", decorative=True) == (
        '<span class="sc-flag sc-flag-code" aria-hidden="true">KE</span>'
    )


@pytest.mark.parametrize("code", ["", "other", "K1", "<b", None])
def test_flag_of_a_malformed_code_is_empty(code: str) -> None:
    assert make_flag_filter(frozenset({"KE"}))(code) == ""


def test_flag_codes_cover_every_country_and_nothing_else(tmp_path: Path) -> None:
    for name in ["de.svg", "xx.svg", "gb-eng.svg", "readme.txt"]:
        (tmp_path / name).write_text("<svg/>")

    assert flag_codes(tmp_path) == {"DE"}  # XX is flag-icons' "unknown", not a country
    assert flag_codes(tmp_path / "missing") == frozenset()


def test_built_flags_cover_every_iso_country() -> None:
    if not FLAGS.is_dir():
        pytest.fail(f"{FLAGS} is missing: run `make assets`")

    assert flag_codes() == {c.alpha_2 for c in pycountry.countries}


def test_pages_show_flags_as_images_and_no_emoji(client: TestClient, database: Database) -> None:
    summit = make_summit(database)
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="Welcome"))
        speaker = programme.add_speaker(
            db, summit, programme.SpeakerInput(name="Ana Souza", country="BR")
        )
        programme.set_item_speakers(db, item, [speaker.id])
        session_id, speaker_id = session.id, speaker.id

    listing = client.get("/s/test-summit/speakers")
    profile = client.get(f"/s/test-summit/speakers/{speaker_id}")
    running_order = client.get(f"/s/test-summit/sessions/{session_id}")

    # Beside the name the flag is decoration; alone (after a speaker's name) it is the name.
    for page in (listing, profile):
        assert re.search(r'<img class="sc-flag" src="/static/build/flags/br.svg" alt=""', page.text)
        assert "Brazil" in page.text
    assert 'src="/static/build/flags/br.svg" alt="Brazil"' in running_order.text
    for page in (listing, profile, running_order):
        assert page.status_code == 200
        assert REGIONAL_INDICATORS.findall(page.text) == []
    image = client.get("/static/build/flags/br.svg")
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")


def test_templates_mark_a_flag_beside_the_country_name_as_decoration() -> None:
    # Else screen readers say "Brazil Brazil": the image's alt, then the name beside it.
    pattern = re.compile(r"\|flag \}\}\s*\{\{ [\w.]+\|country \}\}")
    templates = Path(__file__).resolve().parents[2] / "src" / "summitcast" / "web" / "templates"

    found = [
        f"{path.relative_to(templates)}: {match.group(0)}"
        for path in sorted(templates.rglob("*.html"))
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]

    assert found == []
