"""A write-heavy client load for fault drills that remembers every write the server acknowledged."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from summitcast.domain.programme import ItemKind
from summitcast.domain.uploads import crc32c_digest
from summitcast.services import locations, programme, speakers
from summitcast.services.demo import DEMO_ORGANISER, DEMO_PASSWORD, seed_demo
from summitcast.services.link_secrets import LinkSecrets
from summitcast.services.programme import get_summit
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Location, Speaker, Upload

SLUG = "demo-summit"
KINDS = ("read", "register", "edit", "upload")  # the Load's kinds of request
CHUNK = 64 * 1024  # SUMMITCAST_UPLOAD_CHUNK_BYTES of the drills' servers
UPLOAD_CHUNKS = 24  # an upload stays unfinished for the length of a short drill
REGISTER_FORM = {
    "country": "KE",
    "city": "Nairobi",
    "kind": "hall",
    "expected_audience": "40",
    "contact": "",
    "privacy_level": "",
}
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def drill_env(database_url: str, secret_key: str) -> dict[str, str]:
    """Settings of a drill's server: small chunks, no registration limit, real job workers."""
    return {
        "SUMMITCAST_DATABASE_URL": database_url,
        "SUMMITCAST_SECRET_KEY": secret_key,
        "SUMMITCAST_ENVIRONMENT": "test",
        "SUMMITCAST_UPLOAD_CHUNK_BYTES": str(CHUNK),
        # One client registers hundreds of places here; the limit is tested elsewhere.
        "SUMMITCAST_REGISTRATIONS_PER_HOUR": "1000000",
        # The background jobs run too: an outage must not make them spill tracebacks.
        "SUMMITCAST_JOB_WORKERS": "true",
        "SUMMITCAST_REDIS_URL": "",
    }


def seed(database_url: str, secret_key: str, invitations: int) -> list[str]:
    """Migrate, create the demo summit, and invite speakers to upload; their link tokens."""
    database = Database(database_url)
    try:
        database.upgrade()
        with database.session() as db:
            made = seed_demo(db, start=datetime.now(UTC).date())
            item = db.scalars(
                select(Item).where(Item.kind == ItemKind.SPEECH).order_by(Item.id)
            ).first()
            assert item is not None
            tokens = []
            for n in range(invitations):
                speaker = programme.add_speaker(
                    db, made.summit, programme.SpeakerInput(name=f"Uploader {n}")
                )
                invitation = speakers.invite_speaker(
                    db, made.summit, item, speaker.id, valid_days=30
                )
                tokens.append(speakers.invitation_token(invitation, secret_key.encode()))
    finally:
        database.dispose()
    return tokens


def screen_location(database_url: str, secret_key: str) -> locations.BulkRegistered:
    """An approved location of the demo summit, for a screen's heartbeats."""
    database = Database(database_url)
    try:
        with database.session() as db:
            [made] = locations.register_locations_bulk(
                db,
                get_summit(db, SLUG),
                [locations.LocationInput(label="Hall", country="FR")],
                links=LinkSecrets(secret_key),
            )
    finally:
        database.dispose()
    return made


MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # what the sniffer wants


def chunk_bytes(upload: int, index: int) -> bytes:
    """The deterministic content of one chunk of one drill upload (an MP4's head first)."""
    body = bytes([(upload * 7 + index) % 251]) * CHUNK
    return (MP4_HEAD + body)[:CHUNK] if index == 0 else body


@dataclass
class Tally:
    """What the server answered, and every write it acknowledged."""

    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0  # connection refused or cut (the server was down)
    wrong: list[str] = field(default_factory=list)  # a 5xx but 503, or a 503 without Retry-After
    registered: list[str] = field(default_factory=list)  # public ids of 303-answered forms
    speakers: list[str] = field(default_factory=list)  # names of saved speakers
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # url → (upload n, offset)
    last_ok: dict[str, float] = field(default_factory=dict)  # kind → monotonic time
    sample: dict[tuple[str, int], str] = field(default_factory=dict)  # first answer of a kind
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: httpx.Response, *, ok: tuple[int, ...] = (200,)) -> None:
        """Count one answer (ok: its statuses of success); a 5xx but 503 + Retry-After is wrong."""
        with self.lock:
            self.statuses[response.status_code] += 1
            self.sample.setdefault((kind, response.status_code), response.text[:200])
            if response.status_code in ok:
                self.last_ok[kind] = time.monotonic()
            unavailable = response.status_code == 503 and "retry-after" in response.headers
            if response.status_code >= 500 and not unavailable:
                self.wrong.append(f"{kind}: {response.status_code} {response.text[:200]}")


class Load:
    """Threads registering places, saving speakers, uploading chunks and reading pages."""

    def __init__(self, base_url: str, tokens: list[str], *, registrars: int = 2) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.registrars = registrars
        self.tally = Tally()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every client thread."""
        work: list[Callable[[], None]] = [self._read, self._edit_speakers]
        work += [lambda n=n: self._register(n) for n in range(self.registrars)]
        work += [lambda n=n: self._upload(n) for n in range(len(self.tokens))]
        self.threads = [threading.Thread(target=self._guarded(w), daemon=True) for w in work]
        for thread in self.threads:
            thread.start()

    def finish(self) -> Tally:
        """Stop the clients and return what they saw."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.tally

    def _guarded(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self.stop.is_set():
                try:
                    work()
                except httpx.TransportError:
                    with self.tally.lock:
                        self.tally.refused += 1
                    time.sleep(0.1)

        return run

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=20)

    def _csrf(self, client: httpx.Client, kind: str) -> str | None:
        page = client.get("/login")
        self.tally.note(f"{kind} form", page)
        match = CSRF.search(page.text) if page.status_code == 200 else None
        if match is None:
            time.sleep(0.1)
        return match.group(1) if match else None

    def _read(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                self.tally.note("read", client.get(f"/s/{SLUG}"))
                time.sleep(0.02)

    def _register(self, worker: int) -> None:
        with self._client() as client:
            n = 0
            while not self.stop.is_set():
                token = self._csrf(client, "register")
                if token is None:
                    continue
                n += 1
                form = {**REGISTER_FORM, "label": f"Drill {worker}-{n}", "csrf_token": token}
                answer = client.post(f"/s/{SLUG}/register", data=form)
                self.tally.note("register", answer, ok=(303,))
                if answer.status_code == 303:
                    with self.tally.lock:
                        self.tally.registered.append(answer.headers["location"].rsplit("/", 1)[1])

    def _edit_speakers(self) -> None:
        with self._client() as client:
            token = self._csrf(client, "edit")
            if token is None:
                return
            login = {"email": DEMO_ORGANISER, "password": DEMO_PASSWORD, "csrf_token": token}
            answer = client.post("/login", data=login)
            self.tally.note("login", answer, ok=(303,))
            if answer.status_code != 303:
                time.sleep(0.2)
                return
            token = self._csrf(client, "edit")
            n = 0
            while token is not None and not self.stop.is_set():
                n += 1
                name = f"Drill speaker {id(client)}-{n}"
                form = {"name": name, "csrf_token": token}
                answer = client.post(f"/backstage/s/{SLUG}/speakers", data=form)
                self.tally.note("edit", answer, ok=(303,))
                if answer.status_code == 303:
                    with self.tally.lock:
                        self.tally.speakers.append(name)
                time.sleep(0.05)

    def _upload(self, n: int) -> None:
        token = self.tokens[n]
        with self._client() as client:
            created = client.post(
                f"/speak/{token}/uploads",
                json={"size": CHUNK * UPLOAD_CHUNKS, "kind": "programme", "filename": "t.mp4"},
            )
            self.tally.note("upload", created, ok=(201,))
            if created.status_code != 201:
                time.sleep(0.1)
                return
            url = created.json()["url"]
            with self.tally.lock:
                self.tally.acked[url] = (n, 0)
            offset = 0
            while offset < CHUNK * (UPLOAD_CHUNKS - 1) and not self.stop.is_set():
                index = offset // CHUNK
                part = chunk_bytes(n, index)
                digest = base64.b64encode(crc32c_digest(part)).decode()
                answer = client.patch(
                    url,
                    content=part,
                    headers={"Upload-Offset": str(offset), "Upload-Checksum": f"crc32c {digest}"},
                )
                self.tally.note("upload", answer, ok=(204,))
                if answer.status_code == 204:
                    offset = int(answer.headers["upload-offset"])
                    with self.tally.lock:
                        self.tally.acked[url] = (n, offset)
                elif answer.status_code == 409 and "retry-after" in answer.headers:
                    # A chunk cut by the fault holds its claim until it expires (a minute):
                    # as a speaker would, start another upload rather than wait.
                    return
                elif answer.status_code == 409 and "upload-offset" in answer.headers:
                    offset = int(answer.headers["upload-offset"])  # resume where it stands
                else:
                    time.sleep(0.1)
            # A new upload each time: the last chunk would start the check job.


def missing_writes(database_url: str, upload_dir: Path, tally: Tally) -> list[str]:
    """Every acknowledged write that the database or the upload folder does not hold."""
    database = Database(database_url)
    problems: list[str] = []
    try:
        with database.session() as db:
            stored = set(db.scalars(select(Location.public_id)))
            names = set(db.scalars(select(Speaker.name)))
            rows = {u.public_id: u for u in db.scalars(select(Upload))}
        problems += [f"registration {p}" for p in tally.registered if p not in stored]
        problems += [f"speaker {n}" for n in tally.speakers if n not in names]
        for url, (n, offset) in tally.acked.items():
            row = rows.get(url.rsplit("/", 1)[1])
            if row is None:
                problems.append(f"upload {url} (created with 201)")
                continue
            if row.received < offset:
                problems.append(f"upload {url}: {offset} bytes acknowledged, {row.received} kept")
                continue
            data = (upload_dir / row.stored_name).read_bytes()[:offset]
            expected = b"".join(chunk_bytes(n, i) for i in range(offset // CHUNK))
            if data != expected:
                problems.append(f"upload {url}: the acknowledged bytes differ on disk")
    finally:
        database.dispose()
    return problems
