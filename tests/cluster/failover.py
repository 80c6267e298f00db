"""A session on air on the cluster's redundant encoders, and what the failover tests read of it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import imageio_ffmpeg
import psycopg

from summitcast.domain.accounts import Role
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.media.testclips import Tone, make_clip
from summitcast.services import accounts, broadcast, programme
from summitcast.storage.database import Database

T = TypeVar("T")
SLUG = "failover"
CLIP_S = 60.0  # one item, looped: an item change every minute, not during a 20 s window


@dataclass(frozen=True)
class OnAir:
    """The session both encoders play."""

    slug: str
    session_id: int

    @property
    def hls(self) -> str:
        """The session's HLS folder path."""
        return f"/hls/{self.slug}/{self.session_id}"

    @property
    def master(self) -> str:
        """The master playlist's path."""
        return f"{self.hls}/master.m3u8"

    @property
    def watch(self) -> str:
        """The public watch page's path."""
        return f"/s/{self.slug}/watch?session={self.session_id}"


def put_on_air(database_url: str, media_dir: Path) -> OnAir:
    """A one-language summit whose session loops one clip, started now (no countdown)."""
    media_dir.mkdir(parents=True, exist_ok=True)
    clip = make_clip(
        imageio_ffmpeg.get_ffmpeg_exe(),
        media_dir / "talk.mp4",
        duration_s=CLIP_S,
        width=320,
        height=180,
        fps=15,
        tones=(Tone(440),),
        text="Failover",
    )
    clip.chmod(0o644)
    now = datetime.now(UTC)
    database = Database(database_url)
    try:
        with database.session() as db:
            summit = programme.create_summit(
                db,
                programme.SummitInput(
                    slug=SLUG,
                    title="Failover",
                    time_zone="UTC",
                    start_date=now.date(),
                    end_date=now.date() + timedelta(days=1),
                    languages=("en",),
                ),
            )
            user = accounts.create_user(db, email="producer@example.org", password="x" * 20)
            accounts.grant_role(db, user=user, summit=summit, role=Role.PRODUCER)
            session = programme.add_session(
                db,
                summit,
                programme.SessionInput(
                    title="Keynote",
                    planned_start=now - timedelta(minutes=1),
                    planned_end=now + timedelta(hours=1),
                ),
            )
            item = programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title="Talk",
                    kind=ItemKind.SPEECH,
                    planned_duration_s=int(CLIP_S),
                    status=ItemStatus.READY,
                ),
            )
            broadcast.attach_media(db, item, broadcast.MediaKind.PROGRAMME, str(clip))
            actor = accounts.Actor(user_id=user.id, is_admin=False)
            broadcast.set_loop(db, actor, summit, session.id, loop=True)
            broadcast.start_session(db, actor, summit, session.id, countdown=False)
            return OnAir(summit.slug, session.id)
    finally:
        database.dispose()


@dataclass(frozen=True)
class MediaPlaylist:
    """What the failover tests read of a live media playlist: sequence number → PDT."""

    url: str
    dates: dict[int, str]  # media sequence number → its EXT-X-PROGRAM-DATE-TIME, as written

    @property
    def last(self) -> int:
        """The newest segment's sequence number (-1 when there is none)."""
        return max(self.dates, default=-1)


_SEQUENCE = re.compile(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", re.MULTILINE)


def read_media(url: str) -> MediaPlaylist | None:
    """A media playlist's segments and dates, or None when it does not answer 200."""
    try:
        response = httpx.get(url, timeout=3)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    found = _SEQUENCE.search(response.text)
    sequence = int(found.group(1)) if found else 0
    dates: dict[int, str] = {}
    date = ""
    for line in response.text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.partition(":")[2]
        elif line and not line.startswith("#"):
            dates[sequence] = date
            sequence += 1
            date = ""
    return MediaPlaylist(url, dates)


def rendition_paths(master: str) -> dict[str, list[str]]:
    """Each encoder's playlist paths (relative to the session), from the master's text."""
    found: dict[str, list[str]] = {}
    for uri in re.findall(r'(enc-[a-z0-9]+/[^"\s]+\.m3u8)', master):
        name = uri.split("/", 1)[0].removeprefix("enc-")
        if uri not in found.setdefault(name, []):
            found[name].append(uri)
    return found


def misaligned(first: MediaPlaylist, second: MediaPlaylist) -> dict[int, tuple[str, str]]:
    """The sequence numbers both list with different program date-times."""
    common = sorted(set(first.dates) & set(second.dates))
    return {
        n: (first.dates[n], second.dates[n]) for n in common if first.dates[n] != second.dates[n]
    }


def lease(database_url: str) -> tuple[str, datetime] | None:
    """The broadcast lease's holder and expiry, as the encoders wrote it."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=3) as connection:
        row = connection.execute(
            "SELECT holder, expires_at FROM encoder_leases WHERE name = 'broadcast'"
        ).fetchone()
    return (str(row[0]), row[1]) if row else None


def lease_encoder(database_url: str) -> str | None:
    """The encoder name of the lease's holder while the lease is unexpired."""
    held = lease(database_url)
    if held is None or held[1] <= datetime.now(UTC):
        return None
    return held[0].split("/", 1)[0]


def wait_for(check: Callable[[], T], timeout_s: float, why: Callable[[], str]) -> T:
    """Poll check() until it returns something true; AssertionError naming why() if never."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {why()}")
