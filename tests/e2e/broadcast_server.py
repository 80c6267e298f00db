"""A real summitcast server on a loopback port with a three-clip session (broadcast e2e)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import imageio_ffmpeg
import uvicorn

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ConfigurationError
from summitcast.media.testclips import Tone, make_clip, write_webvtt
from summitcast.services import accounts, programme
from summitcast.services.broadcast import MediaKind, attach_media
from summitcast.storage.database import Database

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
PASSWORD = "correct horse battery staple"
PRODUCER = "producer@example.org"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broadcast:
    """A running server and the session it can broadcast."""

    base: str
    slug: str
    session_id: int
    settings: Settings
    client: httpx.Client
    csrf: str
    app: Any

    @property
    def control(self) -> str:
        """The control room URL of the session."""
        return f"{self.base}/backstage/s/{self.slug}/sessions/{self.session_id}/control"

    @property
    def master(self) -> str:
        """The master playlist URL."""
        return f"{self.base}/hls/{self.slug}/{self.session_id}/master.m3u8"

    def press(self, action: str) -> None:
        """Press a control room button."""
        response = self.client.post(
            f"{self.control}/{action}", data={"csrf_token": self.csrf}, follow_redirects=False
        )
        assert response.status_code == 303, response.text

    def on_air(self) -> dict[str, object]:
        """The public on-air view."""
        url = f"{self.base}/s/{self.slug}/sessions/{self.session_id}/on-air.json"
        body: dict[str, object] = httpx.get(url, timeout=5).json()
        return body

    def health(self) -> dict[str, object]:
        """The control room's health view."""
        body: dict[str, object] = self.client.get(f"{self.control}/health.json").json()
        return body

    def wait_for(self, check: object, timeout_s: float, what: str) -> None:
        """Poll check() until it is true."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; health={self.health()}")


def make_media(folder: Path) -> dict[str, Path]:
    """Three short clips (one bilingual with subtitles) at a tiny size."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "one": make_clip(FFMPEG, folder / "one.mp4", width=320, height=180, fps=10, text="One"),
        "one_en": make_clip(
            FFMPEG, folder / "one.en.m4a", tones=(Tone(440, "eng"),), width=64, height=36, fps=10
        ),
        "one_fr": make_clip(
            FFMPEG, folder / "one.fr.m4a", tones=(Tone(880, "fra"),), width=64, height=36, fps=10
        ),
        "one_vtt": write_webvtt(folder / "one.en.vtt", [(0.2, 1.2, "Hello"), (1.2, 2.0, "World")]),
        "two": make_clip(FFMPEG, folder / "two.mp4", width=320, height=240, fps=15, text="Two"),
        "three": make_clip(FFMPEG, folder / "three.ts", width=320, height=180, fps=10, tones=()),
    }


ZONE = "Europe/Berlin"


def seed(database: Database, media: dict[str, Path], *, item_s: int = 2) -> tuple[str, int]:
    """A summit in en+fr, a producer, one session of three clips; returns (slug, session id)."""
    # The session starts a minute ago: its day is the summit's local day then, which is
    # not the UTC date in the last hour(s) before midnight UTC (the suite failed there).
    local_day = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(ZoneInfo(ZONE)).date()
    with database.session() as db:
        summit = programme.create_summit(
            db,
            programme.SummitInput(
                slug="bcast",
                title="Broadcast test",
                time_zone=ZONE,
                start_date=local_day,
                end_date=local_day + timedelta(days=1),
                languages=("en", "fr"),
            ),
        )
        user = accounts.create_user(db, email=PRODUCER, password=PASSWORD)
        accounts.grant_role(db, user=user, summit=summit, role=Role.PRODUCER)
        now = datetime.now(UTC)
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=now - timedelta(minutes=1),
                planned_end=now + timedelta(hours=1),
            ),
        )
        items = [
            programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=title,
                    kind=ItemKind.SPEECH,
                    planned_duration_s=item_s,
                    status=ItemStatus.READY,
                ),
            )
            for title in ("Speech one", "Speech two", "Speech three")
        ]
        attach_media(db, items[0], MediaKind.PROGRAMME, str(media["one"]))
        attach_media(db, items[0], MediaKind.AUDIO, str(media["one_en"]), language="en")
        attach_media(db, items[0], MediaKind.AUDIO, str(media["one_fr"]), language="fr")
        attach_media(db, items[0], MediaKind.SUBTITLES, str(media["one_vtt"]), language="en")
        attach_media(db, items[1], MediaKind.PROGRAMME, str(media["two"]))
        attach_media(db, items[2], MediaKind.PROGRAMME, str(media["three"]))
        return summit.slug, session.id


def test_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings of a tiny, fast ladder on free ports (drawn again while their ranges overlap)."""
    refusal: ConfigurationError | None = None
    # Each base port is a random free one and each opens a range (32 interpreter ports
    # per protocol): now and then two ranges overlap and Settings rightly refuses them.
    for _ in range(20):
        values: dict[str, object] = {
            "environment": "test",
            "secret_key": "test-secret-" + "x" * 32,
            "data_dir": tmp_path / "data",
            "database_url": f"sqlite:///{tmp_path / 'summitcast.db'}",
            "broadcast_ladder": "small",
            "broadcast_fps": 10,
            "broadcast_preset": "ultrafast",
            "broadcast_min_free_mb": 0,
            "ingest_rtmp_port": free_port(),
            "ingest_srt_port": free_port(socket.SOCK_DGRAM),
            # Interpreters listen on base + language index (en, fr): free now, +1 very
            # likely too.
            "ingest_interpreter_rtmp_port": free_port(),
            "ingest_interpreter_srt_port": free_port(socket.SOCK_DGRAM),
            # Few sessions and feeds: small ranges, so random bases rarely overlap.
            "broadcast_max_sessions": 2,
            "greenroom_max_feeds": 4,
        }
        values.update(overrides)
        try:
            settings = Settings(**values)  # type: ignore[arg-type]
        except ConfigurationError as error:
            if "overlap" not in str(error):
                raise
            refusal = error
            continue
        # A base port was free when drawn, but base + 1 (the French interpreter) may be
        # another process's: draw again unless every port of the drawn ranges is free.
        if _ranges_free(settings, DRAWN_PORTS - overrides.keys()):
            return settings
        refusal = ConfigurationError("no free port ranges found")
    assert refusal is not None
    raise refusal


DRAWN_PORTS = {
    "ingest_rtmp_port",
    "ingest_srt_port",
    "ingest_interpreter_rtmp_port",
    "ingest_interpreter_srt_port",
}


def _ranges_free(settings: Settings, names: set[str]) -> bool:
    """Whether every port of these settings' ranges can be bound on loopback now."""
    for name, (protocol, ports) in settings.port_ranges().items():
        if name not in names:
            continue
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    return False
    return True


def ffmpeg_children() -> list[int]:
    """PIDs of live ffmpeg processes whose parent is this test process (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError):
            continue
        # fields[0] is the state (Z: already exited, a zombie), fields[1] the parent PID.
        if "ffmpeg" in cmd and fields[0] != "Z" and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@contextmanager
def running_server(tmp_path: Path, **overrides: object) -> Iterator[Broadcast]:
    """Serve a seeded app with uvicorn in a thread; stop it (and every ffmpeg) afterwards."""
    settings = test_settings(tmp_path, **overrides)
    database = Database(settings.effective_database_url)
    database.upgrade()
    slug, session_id = seed(database, make_media(tmp_path / "media"))
    app = create_app(settings, database=database)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    client = httpx.Client(base_url=base, timeout=10)
    try:
        page = client.get("/login")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        client.post(
            "/login",
            data={"email": PRODUCER, "password": PASSWORD, "csrf_token": token.group(1)},
        )
        page = client.get(f"/backstage/s/{slug}/sessions/{session_id}/control")
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        yield Broadcast(base, slug, session_id, settings, client, token.group(1), app)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        database.dispose()


def cmdlines_holding(secret: str, *, besides: tuple[int, ...] = ()) -> list[str]:
    """Command lines of this process's children (other than besides) that contain secret."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and int(stat.parent.name) not in besides and secret in cmdline:
            found.append(cmdline)
    return found
