"""Many speakers create an upload and send its first chunk at once: the race of issue 13 point 2.

A 201 for a new upload must mean the upload is committed: a first chunk sent right after
it, over another connection (as a browser may), must never get 404 "No such upload.".
Shared by tests/e2e/test_upload_commit_race.py (small) and benchmarks/upload_commit_race.py.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import httpx

from summitcast.domain.uploads import crc32c_digest
from summitcast.services import programme, speakers
from summitcast.storage.database import Database

# A chunk's first bytes must sniff as a video (an MP4 'ftyp' box), or the upload is refused.
HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
SPEAKERS_PER_ITEM = 4  # co-speakers: each uploads to the same item, each sees only their own


def seed_speakers(database_url: str, secret: bytes, count: int) -> list[str]:
    """A summit whose items have a few speakers each; one link token per speaker."""
    database = Database(database_url)
    try:
        with database.session() as db:
            summit = programme.create_summit(
                db,
                programme.SummitInput(
                    slug="race",
                    title="Race",
                    time_zone="UTC",
                    start_date=date(2027, 7, 17),
                    end_date=date(2027, 7, 18),
                ),
            )
            session = programme.add_session(
                db,
                summit,
                programme.SessionInput(
                    title="S",
                    planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                    planned_end=datetime(2027, 7, 17, 23, tzinfo=UTC),
                ),
            )
            tokens = []
            item = None
            for n in range(count):
                if n % SPEAKERS_PER_ITEM == 0:
                    item = programme.add_item(db, session, programme.ItemInput(title=f"T{n}"))
                assert item is not None
                speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name=f"S{n}"))
                invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=2)
                tokens.append(speakers.invitation_token(invitation, secret))
            return tokens
    finally:
        database.dispose()


@dataclass
class Round:
    """What one round of clients was answered."""

    created: int = 0
    create_statuses: Counter[int] = field(default_factory=Counter)
    chunk_statuses: Counter[int] = field(default_factory=Counter)
    visible: int = 0  # created uploads a later GET found with the first chunk stored
    seconds: float = 0.0

    @property
    def not_found(self) -> int:
        """Answers 404 to a chunk of an upload that had been answered 201."""
        return self.chunk_statuses[404]


def _chunk(chunk_bytes: int) -> tuple[bytes, dict[str, str]]:
    data = (HEAD + b"\x01" * chunk_bytes)[:chunk_bytes]
    digest = base64.b64encode(crc32c_digest(data)).decode()
    return data, {"Upload-Offset": "0", "Upload-Checksum": f"crc32c {digest}"}


async def _speaker(
    client: httpx.AsyncClient, token: str, chunk_bytes: int, start: asyncio.Event, result: Round
) -> str | None:
    """Create an upload of two chunks, then at once send the first; the upload's address."""
    body, headers = _chunk(chunk_bytes)
    await start.wait()
    created = await client.post(
        f"/speak/{token}/uploads", json={"size": 2 * chunk_bytes, "filename": "talk.mp4"}
    )
    result.create_statuses[created.status_code] += 1
    if created.status_code != 201:
        return None
    result.created += 1
    url: str = created.json()["url"]
    sent = await client.patch(url, content=body, headers=headers)
    result.chunk_statuses[sent.status_code] += 1
    return url


def _client(base_url: str, size: int) -> httpx.AsyncClient:
    # No keep-alive: each request on a connection of its own, so the chunk never follows
    # its creation down the same connection (a browser's next fetch may not), and no
    # request meets a connection the server closed while idle.
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(120.0))


async def race_round(base_url: str, tokens: list[str], chunk_bytes: int) -> Round:
    """Every token's speaker at once; then check each created upload is there."""
    result = Round()
    async with _client(base_url, len(tokens)) as client:
        start = asyncio.Event()
        tasks = [
            asyncio.ensure_future(_speaker(client, t, chunk_bytes, start, result)) for t in tokens
        ]
        began = time.perf_counter()
        start.set()
        urls = await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - began
        checks = await asyncio.gather(*(client.get(url) for url in urls if url is not None))
    result.visible = sum(
        1 for r in checks if r.status_code == 200 and r.json()["offset"] == chunk_bytes
    )
    return result


def run_race(base_url: str, tokens: list[str], *, rounds: int, chunk_bytes: int) -> list[Round]:
    """`rounds` rounds of every token's speaker at once."""
    return [asyncio.run(race_round(base_url, tokens, chunk_bytes)) for _ in range(rounds)]
