"""Two broadcast nodes on one database play one session in lockstep (real ffmpeg).

Each node is a BroadcastManager with its own data and segment folders; both read
the session's clock from the database, so segment N has the same number and
EXT-X-PROGRAM-DATE-TIME on both, whenever each node started. The primary holds
the lease; when it stops renewing, the backup takes over and plays on; a node that
comes back for the old name is the backup; at the end only the primary records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.media.playlist import parse_media_playlist
from summitcast.media.recording import RECORDING_DIR
from summitcast.media.testclips import make_clip
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.services import accounts, broadcast, programme
from summitcast.storage.database import Database
from tests.e2e.broadcast_server import FFMPEG, ffmpeg_children
from tests.e2e.broadcast_server import test_settings as settings_on_free_ports

ITEM_S = 6
LEASE_S = 3.0
# The small ladder with one language: its video rungs and audio renditions.
RENDITIONS = ("360p", "240p", "audio_en", "audio_low_en")


def _seed(database: Database, media: Path) -> tuple[str, int, accounts.Actor]:
    """A summit in English with one session of two clips; returns (slug, session, producer)."""
    media.mkdir(parents=True, exist_ok=True)
    clips = [
        make_clip(FFMPEG, media / f"{n}.mp4", duration_s=ITEM_S, width=320, height=180, fps=10)
        for n in ("one", "two")
    ]
    today = datetime.now(UTC).date()
    with database.session() as db:
        summit = programme.create_summit(
            db,
            programme.SummitInput(
                slug="twin",
                title="Twin encoders",
                time_zone="UTC",
                start_date=today - timedelta(days=1),
                end_date=today + timedelta(days=1),
            ),
        )
        user = accounts.create_user(db, email="producer@example.org", password="x" * 16)
        accounts.grant_role(db, user=user, summit=summit, role=Role.PRODUCER)
        now = datetime.now(UTC)
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening", planned_start=now, planned_end=now + timedelta(hours=1)
            ),
        )
        for n, clip in enumerate(clips):
            item = programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=f"Clip {n}",
                    kind=ItemKind.SPEECH,
                    planned_duration_s=ITEM_S,
                    status=ItemStatus.READY,
                ),
            )
            broadcast.attach_media(db, item, broadcast.MediaKind.PROGRAMME, str(clip))
        return summit.slug, session.id, accounts.Actor(user.id, is_admin=False)


def _node_settings(tmp_path: Path, name: str, database_url: str) -> Settings:
    return settings_on_free_ports(
        tmp_path / name,
        data_dir=tmp_path / name / "data",
        database_url=database_url,
        encoder_name=name,
        encoder_names=["a", "b"],
        encoder_lease_s=LEASE_S,
        node_name=f"node-{name}",
    )


def _published(settings: Settings, slug: str, session_id: int) -> dict[str, dict[int, float]]:
    """Per rendition: sequence number → program date-time of its live playlist's segments."""
    folder = settings.effective_segment_dir / slug / str(session_id)
    found: dict[str, dict[int, float]] = {}
    for rendition in RENDITIONS:
        try:
            text = (folder / rendition / "index.m3u8").read_text()
        except FileNotFoundError:
            found[rendition] = {}
            continue
        segments = parse_media_playlist(text).segments
        found[rendition] = {s.sequence: s.program_date_time or 0.0 for s in segments}
    return found


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait until check() is true; return the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def _lined_up(one: dict[str, dict[int, float]], other: dict[str, dict[int, float]]) -> None:
    """Both nodes' segments with the same number have the same date; newest within one."""
    for rendition in RENDITIONS:
        mine, theirs = one[rendition], other[rendition]
        common = set(mine) & set(theirs)
        assert len(common) >= 2, (rendition, sorted(mine), sorted(theirs))
        assert {n: mine[n] for n in common} == {n: theirs[n] for n in common}, rendition
        assert abs(max(mine) - max(theirs)) <= 1, (rendition, max(mine), max(theirs))


def _at_least(count: int, published: dict[str, dict[int, float]]) -> bool:
    return all(len(published[r]) >= count for r in RENDITIONS)


def _end(url: str, slug: str, session_id: int, producer: accounts.Actor) -> None:
    database = Database(url)
    with database.session() as db:
        broadcast.end_session(db, producer, programme.get_summit(db, slug), session_id)
    database.dispose()


def _recordings(settings: Settings, slug: str, session_id: int) -> list[str]:
    """The languages of the MP4 recordings in a node's session folder."""
    folder = settings.effective_segment_dir / slug / str(session_id) / RECORDING_DIR
    return sorted(path.name.split("-")[0] for path in folder.glob("*.mp4"))


@pytest.mark.e2e
def test_two_encoders_line_up_and_the_backup_takes_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    seeding = Database(url)
    seeding.upgrade()
    slug, session_id, producer = _seed(seeding, tmp_path / "media")
    with seeding.session() as db:
        summit = programme.get_summit(db, slug)
        broadcast.start_session(db, producer, summit, session_id, countdown=False)
    seeding.dispose()
    settings = {name: _node_settings(tmp_path, name, url) for name in ("a", "b")}
    managers: list[BroadcastManager] = []

    def node(name: str) -> BroadcastManager:
        manager = BroadcastManager(settings[name], Database(url))
        managers.append(manager)
        return manager

    def published(name: str) -> dict[str, dict[int, float]]:
        return _published(settings[name], slug, session_id)

    async def scenario() -> None:
        a = node("a")
        await a.start()
        await asyncio.sleep(2)  # the second node joins a session already on air
        b = node("b")
        await b.start()
        await _until(
            lambda: _at_least(4, published("a")) and _at_least(3, published("b")),
            40,
            "segments from both encoders",
        )
        _lined_up(published("a"), published("b"))
        assert a.lease is not None
        assert b.lease is not None
        assert (a.lease.role, b.lease.role) == ("primary", "backup")
        health = a.local_health(session_id)
        assert health is not None
        assert health["encoder"] == {"name": "a", "role": "primary", "node": "node-a"}

        # The primary dies: it stops renewing (no release), then its playout goes too.
        await a.lease.task.stop()
        took_s = await _until(lambda: b.lease is not None and b.lease.primary, 10, "take-over")
        assert took_s <= LEASE_S + 0.5
        await a.stop()
        newest = max(published("b")["360p"])
        await _until(lambda: max(published("b")["360p"]) >= newest + 2, 15, "b playing on")
        b_health = b.local_health(session_id)
        assert b_health is not None
        assert b_health["encoder"]["role"] == "primary"

        # The old node comes back for the same name: it is the backup, and in step. Its
        # output starts afresh at the session's current number (the old one kept aside).
        left_at = max(published("a")["360p"])
        again = node("a")
        await again.start()
        await _until(
            lambda: _at_least(2, published("a")) and min(published("a")["360p"]) > left_at,
            20,
            "the returned node's segments",
        )
        assert again.lease is not None
        assert again.lease.role == "backup"
        assert b.lease.role == "primary"
        _lined_up(published("a"), published("b"))

        # The session ends: both stop, and only the primary writes the recordings.
        _end(url, slug, session_id, producer)
        await _until(lambda: bool(_recordings(settings["b"], slug, session_id)), 30, "recording")
        managers.remove(again)
        await again.stop()  # lets a sync that is ending the session finish (and any recording)
        assert _recordings(settings["b"], slug, session_id) == ["en"]
        assert _recordings(settings["a"], slug, session_id) == []

    async def run() -> None:
        try:
            await scenario()
        finally:
            for manager in managers:
                await manager.stop()

    asyncio.run(run())
    assert ffmpeg_children() == []


@pytest.mark.integration
def test_both_encoders_reporting_the_same_finished_item_advance_it_once(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'one.db'}")
    database.upgrade()
    slug, session_id, producer = _seed(database, tmp_path / "media")
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        started = broadcast.start_session(db, producer, summit, session_id, countdown=False)
    generation = started.state.generation

    with database.session() as db:
        first = broadcast.item_finished(db, session_id, generation)
    with database.session() as db:
        second = broadcast.item_finished(db, session_id, generation)  # the other node, late

    assert first is not None
    assert second is not None
    assert (first.state.position, first.state.generation) == (1, generation + 1)
    assert second.state == first.state
    assert second.changed_at == first.changed_at  # no write: the late joiner's seek holds
    database.dispose()
