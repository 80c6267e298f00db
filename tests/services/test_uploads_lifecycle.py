"""Upload chunks on SQLite and PostgreSQL: checksums, claims, resumption, expiry."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import (
    ChunkAlgorithm,
    ChunkChecksum,
    UploadState,
    crc32c_digest,
)
from summitcast.errors import ConflictError, ValidationError
from summitcast.runtime.upload_jobs import chunk_store
from summitcast.services import programme, speakers, upload_chunks, upload_results, uploads
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, SpeakerInvitation, Upload
from tests import factories
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"  # sniffed as MP4; the checks never run here


@pytest.fixture
def small(settings: Settings) -> Settings:
    """64 KiB chunks, no background workers (tests drive them)."""
    return settings.model_copy(update={"upload_chunk_bytes": CHUNK, "job_workers": False})


def _invitation(database: Database) -> int:
    make_summit(database, "uploads")
    with database.session() as db:
        summit = programme.get_summit(db, "uploads")
        return factories.invitation(db, summit, speaker_name="Ana").id


def _create(database: Database, store: uploads.ChunkStore, invitation_id: int, size: int) -> str:
    with database.session() as db:
        invitation = db.get(SpeakerInvitation, invitation_id)
        assert invitation is not None
        return uploads.create_upload(db, store, invitation, size=size, kind="programme").public_id


def _send(
    database: Database,
    store: uploads.ChunkStore,
    public_id: str,
    offset: int,
    data: bytes,
    checksum: ChunkChecksum | None = None,
) -> Upload:
    """Send one chunk with its CRC-32C, as upload.js does, unless told another checksum."""
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        checksum = checksum or ChunkChecksum(ChunkAlgorithm.CRC32C, crc32c_digest(data))
        return upload_chunks.write_chunk(
            db, store, upload, offset=offset, data=data, checksum=checksum
        )


def _row(database: Database, public_id: str) -> tuple[str, int, str]:
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        return upload.state, upload.received, upload.sha256


def _digests(database: Database, public_id: str) -> bytes:
    with database.session() as db:
        return bytes(uploads.upload_by_public_id(db, public_id).chunk_digests)


def _file(store: uploads.ChunkStore, database: Database, public_id: str) -> Path:
    with database.session() as db:
        return store.path_of(uploads.upload_by_public_id(db, public_id))


@pytest.mark.parametrize("algorithm", list(ChunkAlgorithm))
def test_damaged_chunk_is_refused_and_leaves_no_trace_in_file_or_digests(
    small: Settings, database: Database, algorithm: ChunkAlgorithm
) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(3 * CHUNK - len(MP4_HEAD))
    public_id = _create(database, store, _invitation(database), len(data))
    _send(database, store, public_id, 0, data[:CHUNK])

    bad = bytearray(data[CHUNK : 2 * CHUNK])
    bad[100] ^= 0xFF  # one bit flipped in transit; the client's checksum is of the good bytes
    good = data[CHUNK : 2 * CHUNK]
    digest = crc32c_digest(good) if algorithm is ChunkAlgorithm.CRC32C else sha256(good).digest()
    with pytest.raises(ValidationError, match="arrived damaged"):
        _send(database, store, public_id, CHUNK, bytes(bad), ChunkChecksum(algorithm, digest))
    after_damage = (_row(database, public_id), _digests(database, public_id))
    _send(database, store, public_id, CHUNK, good, ChunkChecksum(algorithm, digest))
    _send(database, store, public_id, 2 * CHUNK, data[2 * CHUNK :])

    assert after_damage == ((UploadState.RECEIVING, CHUNK, ""), crc32c_digest(data[:CHUNK]))
    assert _row(database, public_id) == (UploadState.CHECKING, len(data), "")
    assert _digests(database, public_id) == b"".join(
        crc32c_digest(data[at : at + CHUNK]) for at in range(0, len(data), CHUNK)
    )
    assert _file(store, database, public_id).read_bytes() == data


def test_upload_resumed_by_another_node_stores_the_whole_file(
    small: Settings, database: Database
) -> None:
    data = MP4_HEAD + os.urandom(5 * CHUNK)
    first = chunk_store(small)
    public_id = _create(database, first, _invitation(database), len(data))
    _send(database, first, public_id, 0, data[:CHUNK])
    _send(database, first, public_id, CHUNK, data[CHUNK : 2 * CHUNK])

    # Another node (or a restarted app) with nothing in memory; it is sent the last stored
    # chunk again first, as a resuming browser does to show it holds the same file.
    other = chunk_store(small)
    for offset in range(CHUNK, len(data), CHUNK):
        _send(database, other, public_id, offset, data[offset : offset + CHUNK])

    assert _row(database, public_id)[:2] == (UploadState.CHECKING, len(data))
    assert _file(first, database, public_id).read_bytes() == data


def test_misaligned_chunk_is_refused_with_the_rule(small: Settings, database: Database) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(3 * CHUNK)
    public_id = _create(database, store, _invitation(database), len(data))
    _send(database, store, public_id, 0, data[:CHUNK])

    with pytest.raises(ValidationError, match=f"must carry {CHUNK} bytes"):
        _send(database, store, public_id, CHUNK, data[CHUNK : CHUNK + 100])

    assert _row(database, public_id)[1] == CHUNK


def test_second_node_cannot_claim_a_chunk_being_written_until_the_claim_expires(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(2 * CHUNK - len(MP4_HEAD))
    public_id = _create(database, store, _invitation(database), len(data))
    with database.session() as db:  # node A claims chunk 0 and commits the claim
        ticket = upload_chunks.begin_chunk(
            db, store, uploads.upload_by_public_id(db, public_id), offset=0, length=CHUNK
        )

    with database.session() as db, pytest.raises(upload_chunks.ChunkBusyError) as busy:
        upload_chunks.begin_chunk(
            db, store, uploads.upload_by_public_id(db, public_id), offset=0, length=CHUNK
        )
    later = datetime.now(UTC) + timedelta(seconds=upload_chunks.CLAIM_S + 1)
    with database.session() as db:  # A crashed: after expiry node B takes the chunk over
        taken = upload_chunks.begin_chunk(
            db,
            store,
            uploads.upload_by_public_id(db, public_id),
            offset=0,
            length=CHUNK,
            now=later,
        )
    digests = upload_chunks.ChunkDigests(crc32c=crc32c_digest(data[:CHUNK]), sha256=None)
    with database.session() as db:
        renewed = (upload_chunks.renew_claim(db, taken), upload_chunks.renew_claim(db, ticket))
    with database.session() as db, pytest.raises(ConflictError, match="took it over"):
        upload_chunks.end_chunk(db, store, ticket, digests=digests, checksum=None, head=data[:4096])

    assert busy.value.status_code == 409
    assert 1 <= busy.value.retry_after_s <= upload_chunks.CLAIM_S + 1
    assert taken.claim not in ("", ticket.claim)
    assert renewed == (True, False)  # the crashed writer, back, learns it lost the chunk
    assert _row(database, public_id)[1] == 0


def test_two_app_instances_racing_for_one_chunk_store_only_the_winners_bytes(
    small: Settings, database: Database
) -> None:
    invitation_id = _invitation(database)
    with database.session() as db:
        token = speakers.invitation_token(
            db.get(SpeakerInvitation, invitation_id),  # type: ignore[arg-type]
            small.secret_key.get_secret_value().encode(),
        )
    # Two nodes: their own app, engine and store, over one database and one upload folder.
    databases = [Database(database.url) for _ in range(2)]
    apps = [create_app(small, database=d) for d in databases]
    first = MP4_HEAD + os.urandom(CHUNK - len(MP4_HEAD))
    other = MP4_HEAD + os.urandom(CHUNK - len(MP4_HEAD))  # another file, same size
    data = first + os.urandom(CHUNK)

    async def race() -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response]:
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://127.0.0.1")
            for a in apps
        ]
        created = (
            await clients[0].post(f"/speak/{token}/uploads", json={"size": len(data)})
        ).json()
        halfway = asyncio.Event()
        go_on = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield first[: CHUNK // 2]
            halfway.set()
            await go_on.wait()
            yield first[CHUNK // 2 :]

        headers = {"Upload-Offset": "0", "Content-Length": str(CHUNK)}
        winner = asyncio.create_task(
            clients[0].patch(created["url"], content=slow_body(), headers=headers)
        )
        await halfway.wait()
        await asyncio.sleep(0.2)  # node A holds the claim and has written half the chunk
        loser = await clients[1].patch(created["url"], content=other, headers=headers)
        go_on.set()
        won = await winner
        retried = await clients[1].patch(created["url"], content=other, headers=headers)
        resumed = await clients[1].patch(
            created["url"],
            content=data[CHUNK:],
            headers={"Upload-Offset": str(CHUNK)},
        )
        for client in clients:
            await client.aclose()
        return won, loser, retried, resumed

    try:
        won, loser, retried, resumed = asyncio.run(race())
    finally:
        for d in databases:
            d.dispose()

    assert (won.status_code, loser.status_code) == (204, 409)
    assert loser.json()["offset"] == 0
    assert int(loser.headers["retry-after"]) >= 1
    assert retried.status_code == 409
    assert "differ from what was received" in retried.json()["detail"]
    assert resumed.status_code == 204
    with database.session() as db:
        upload = db.query(Upload).one()
        assert upload.state == UploadState.CHECKING
        assert (small.effective_upload_dir / upload.stored_name).read_bytes() == data


def test_chunk_that_differs_from_bytes_received_before_is_refused(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(2 * CHUNK)
    public_id = _create(database, store, _invitation(database), len(data))
    _send(database, store, public_id, 0, data[:CHUNK])

    with pytest.raises(ConflictError, match="differ from what was received"):
        _send(database, store, public_id, 0, b"\x00" * CHUNK)

    assert _row(database, public_id)[1] == CHUNK


def test_expiry_task_of_the_running_app_deletes_stale_partial_uploads(
    small: Settings, database: Database
) -> None:
    settings = small.model_copy(
        update={
            "job_workers": True,
            "job_poll_interval_s": 0.05,
            "upload_partial_expiry_s": 1.0,
            "upload_sweep_interval_s": 0.1,
        }
    )
    invitation_id = _invitation(database)
    with database.session() as db:
        token = speakers.invitation_token(
            db.get(SpeakerInvitation, invitation_id),  # type: ignore[arg-type]
            settings.secret_key.get_secret_value().encode(),
        )
    app = create_app(settings, database=database)
    store = app.state.upload_store
    data = MP4_HEAD + os.urandom(2 * CHUNK)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        created = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()
        public_id = created["id"]
        sent = client.patch(created["url"], content=data[:CHUNK], headers={"Upload-Offset": "0"})
        assert sent.status_code == 204
        path = _file(store, database, public_id)
        assert path.stat().st_size == CHUNK
        with database.session() as db:
            item = db.get(Item, db.get(SpeakerInvitation, invitation_id).item_id)  # type: ignore[union-attr]
            assert item is not None
            assert item.status == ItemStatus.UPLOADING

        deadline = time.monotonic() + 15
        while _row(database, public_id)[0] != UploadState.EXPIRED:
            assert time.monotonic() < deadline, "the cleanup task never expired the upload"
            time.sleep(0.1)
        late = client.patch(
            created["url"], content=data[CHUNK : 2 * CHUNK], headers={"Upload-Offset": str(CHUNK)}
        )

    assert not path.exists()
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    with database.session() as db:
        item = db.get(Item, db.get(SpeakerInvitation, invitation_id).item_id)  # type: ignore[union-attr]
        assert item is not None
        assert item.status == ItemStatus.MISSING


def test_expiry_spares_fresh_partials_and_finished_uploads(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    invitation_id = _invitation(database)
    data = MP4_HEAD + os.urandom(CHUNK - len(MP4_HEAD))
    finished = _create(database, store, invitation_id, len(data))
    _send(database, store, finished, 0, data)
    stale = _create(database, store, invitation_id, 2 * len(data))
    _send(database, store, stale, 0, data)
    fresh = _create(database, store, invitation_id, 2 * len(data))
    _send(database, store, fresh, 0, data)
    later = datetime.now(UTC) + timedelta(seconds=small.upload_partial_expiry_s + 60)
    with database.session() as db:
        uploads.upload_by_public_id(db, fresh).expires_at = later + timedelta(hours=1)

    with database.session() as db:
        count = upload_results.expire_partials(db, store, now=later)

    assert count == 1
    assert [_row(database, p)[0] for p in (finished, stale, fresh)] == [
        UploadState.CHECKING,
        UploadState.EXPIRED,
        UploadState.RECEIVING,
    ]
    assert _file(store, database, finished).exists()
    assert not _file(store, database, stale).exists()
    assert _file(store, database, fresh).exists()


def test_connection_dropped_mid_chunk_frees_the_chunk_for_the_next_attempt(
    small: Settings, database: Database
) -> None:
    invitation_id = _invitation(database)
    with database.session() as db:
        token = speakers.invitation_token(
            db.get(SpeakerInvitation, invitation_id),  # type: ignore[arg-type]
            small.secret_key.get_secret_value().encode(),
        )
    app = create_app(small, database=database)
    data = MP4_HEAD + os.urandom(2 * CHUNK - len(MP4_HEAD))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        url = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()["url"]
    messages = [
        {"type": "http.request", "body": data[: CHUNK // 2], "more_body": True},
        {"type": "http.disconnect"},  # the speaker's train enters a tunnel
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"upload-offset", b"0"),
            (b"content-length", str(CHUNK).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    with database.session() as db:
        upload = db.query(Upload).one()
        claim, received = upload.claim, upload.received
    path = small.effective_upload_dir / upload.stored_name
    size_after_drop = path.stat().st_size
    with TestClient(app, base_url="http://127.0.0.1") as client:
        again = client.patch(url, content=data[:CHUNK], headers={"Upload-Offset": "0"})

    assert (claim, received, size_after_drop) == ("", 0, 0)
    assert again.status_code == 204
    assert again.headers["upload-offset"] == str(CHUNK)


def test_slow_chunk_keeps_its_claim_past_the_claim_time_by_renewing_it(
    small: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_chunks, "CLAIM_S", 0.6)
    monkeypatch.setattr(upload_chunks, "CLAIM_RENEW_S", 0.1)
    monkeypatch.setattr(upload_chunks, "CLAIM_MARGIN_S", 0.2)
    invitation_id = _invitation(database)
    with database.session() as db:
        token = speakers.invitation_token(
            db.get(SpeakerInvitation, invitation_id),  # type: ignore[arg-type]
            small.secret_key.get_secret_value().encode(),
        )
    app = create_app(small, database=database)
    data = MP4_HEAD + os.urandom(CHUNK - len(MP4_HEAD))

    async def trickle() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            created = await client.post(f"/speak/{token}/uploads", json={"size": len(data)})
            url = created.json()["url"]

            async def slow_body() -> AsyncIterator[bytes]:
                for at in range(0, CHUNK, CHUNK // 8):  # 8 pieces over ~1.6 s: > CLAIM_S
                    yield data[at : at + CHUNK // 8]
                    await asyncio.sleep(0.2)

            headers = {"Upload-Offset": "0", "Content-Length": str(CHUNK)}
            sending = asyncio.create_task(client.patch(url, content=slow_body(), headers=headers))
            await asyncio.sleep(1.0)  # past CLAIM_S: only renewals keep the claim alive
            other = await client.patch(url, content=data, headers=headers)
            return await sending, other

    slow, other = asyncio.run(trickle())

    assert (slow.status_code, slow.headers["upload-offset"]) == (204, str(CHUNK))
    assert other.status_code == 409
    assert "Another connection is sending this part" in other.json()["detail"]


def test_opening_a_link_records_its_use_at_most_once_a_minute(
    small: Settings, database: Database
) -> None:
    invitation_id = _invitation(database)
    secret = small.secret_key.get_secret_value().encode()
    with database.session() as db:
        invitation = db.get(SpeakerInvitation, invitation_id)
        assert invitation is not None
        token = speakers.invitation_token(invitation, secret)
    first = datetime.now(UTC)
    seen = []
    for moment in (first, first + timedelta(seconds=59), first + timedelta(seconds=61)):
        with database.session() as db:
            speakers.open_invitation(db, token, secret, now=moment)
        with database.session() as db:
            seen.append(db.get(SpeakerInvitation, invitation_id).last_used_at)  # type: ignore[union-attr]

    # Every upload chunk opens the link: a row write for each would slow uploads down.
    assert seen == [first, first, first + timedelta(seconds=61)]
