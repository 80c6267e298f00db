"""A crawl of the public and backstage pages: every asset a page references is there (no 404)."""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services import locations, programme, speakers
from summitcast.services.link_secrets import LinkSecrets
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from tests.conftest import grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

MAX_PAGES = 80
# Links that change state or are not pages: logging out would end the organiser's crawl.
SKIP = re.compile(r"^/logout|\.(csv|json|jsonl|xml|ics|txt|pdf|png|jpg|mp4|m3u8)$|/download$")
REGIONAL_INDICATORS = re.compile("[\U0001f1e6-\U0001f1ff]")


class _Refs(HTMLParser):
    """The links (<a href>) and the assets (stylesheets, icons, scripts, images) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.assets: list[str] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in found:
            self.links.append(found["href"])
        elif tag == "link" and "href" in found:
            self.assets.append(found["href"])
            if found.get("rel") == "icon":
                self.icons.append(found["href"])
        elif tag in ("script", "img", "source", "video", "audio", "track"):
            for name in ("src", "poster"):
                if found.get(name):
                    self.assets.append(found[name])


def _seed(database: Database, settings: Settings) -> list[str]:
    """A summit with a session, speakers from three countries, a speaker link and locations."""
    make_summit(database)
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
        ids = [
            programme.add_speaker(db, summit, programme.SpeakerInput(name=name, country=code)).id
            for name, code in [("Ana", "BR"), ("Wanjiru", "KE"), ("Aiko", "JP")]
        ]
        programme.set_item_speakers(db, item, ids)
        invitation = speakers.invite_speaker(db, summit, item, ids[0], valid_days=1)
        token = speakers.invitation_token(
            invitation, settings.secret_key.get_secret_value().encode()
        )
        for label, code in [("Hall", "KE"), ("Square", "BR"), ("Library", "IN")]:
            locations.register_location(
                db,
                summit,
                locations.LocationInput(label=label, country=code),
                at_risk=(),
                links=LinkSecrets.of(settings),
            )
        for row in db.query(Location).filter(Location.label != "Library"):
            locations.approve_location(db, row)
        public_id = db.query(Location).filter_by(label="Hall").one().public_id
    return [f"/speak/{token}", f"/l/{public_id}", f"/l/{public_id}/counted"]


def _crawl(client: TestClient, starts: list[str]) -> dict[str, _Refs]:
    """Follow same-site links from the starts, breadth first; the HTML pages found by URL."""
    pages: dict[str, _Refs] = {}
    seen = set(starts)
    queue = deque(starts)
    while queue and len(pages) < MAX_PAGES:
        url = queue.popleft()
        response = client.get(url)
        assert response.status_code < 500, f"{url}: {response.status_code}\n{response.text}"
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        assert REGIONAL_INDICATORS.findall(response.text) == [], f"flag emoji on {url}"
        refs = _Refs()
        refs.feed(response.text)
        pages[url] = refs
        for href in refs.links:
            target = urldefrag(urljoin(url, href)).url
            parts = urlsplit(target)
            if parts.netloc not in ("", "127.0.0.1") or SKIP.search(parts.path):
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path not in seen:
                seen.add(path)
                queue.append(path)
    return pages


def test_crawl_of_public_and_backstage_pages_finds_every_asset(
    client: TestClient, database: Database, settings: Settings
) -> None:
    extra = _seed(database, settings)
    user = make_user(database, "org@example.org")
    with database.session() as db:
        grant(database, user, programme.get_summit(db, "test-summit"), Role.ORGANISER)

    public = _crawl(client, ["/", "/login", "/s/test-summit", *extra])
    log_in(client, "org@example.org")
    backstage = _crawl(client, ["/backstage", "/backstage/s/test-summit"])
    pages = {**public, **backstage}

    assets = {urldefrag(urljoin(url, a)).url for url, refs in pages.items() for a in refs.assets}
    missing = {a: client.get(a).status_code for a in sorted(assets) if not a.startswith("data:")}
    without_icon = [url for url, refs in pages.items() if len(refs.icons) != 2]

    assert len(public) >= 8
    assert len(backstage) >= 8
    assert {"/favicon.ico", "/static/css/flags.css"} <= assets
    assert any(a.startswith("/static/build/flags/") for a in assets)
    assert {a: code for a, code in missing.items() if code != 200} == {}
    assert without_icon == []
