"""The chunk route: bytes land byte-exact in file and checksums, and on disk before recorded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from summitcast.config import Settings
from summitcast.domain.uploads import crc32c_digest
from summitcast.services import upload_chunks, uploads
from summitcast.services.upload_chunks import ChunkSink
from summitcast.services.upload_protocol import OpenChunk
from summitcast.storage.chunks import DiskChunkFiles
from summitcast.storage.database import Database
from summitcast.web.transport.uploads import receive
from tests.services.test_upload_sink import _ticket
from tests.web.test_speaker_portal import _secret, _setup


class _Body:
    """A request whose body arrives in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def stream(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)  # let the writing thread's answer in between, as a socket does
            yield piece
        yield b""


async def _receive_with(
    request: Any, sink: ChunkSink, buffers: list[bytearray], *, claim_after_s: float
) -> None:
    """Receive the body as the route does, its claim (the sink) known after claim_after_s."""

    async def claim() -> OpenChunk:
        await asyncio.sleep(claim_after_s)
        return OpenChunk(sink, None)

    await receive(request, None, asyncio.ensure_future(claim()), buffers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seed", "sha256", "count", "claim_after_s"),
    [(1, False, 2, 0.0), (2, False, 4, 0.0), (3, True, 4, 0.0), (4, False, 4, 0.05)],
)
def test_pieces_of_any_size_cross_the_buffers_into_file_and_checksums(
    seed: int, sha256: bool, count: int, claim_after_s: float, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(50_000)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    path = tmp_path / "upload"
    path.write_bytes(b"\xff" * 100)  # the chunk before, stored already
    sink = ChunkSink(_ticket(path, 100, len(data)), DiskChunkFiles(tmp_path), sha256=sha256)
    buffers = [bytearray(1000) for _ in range(count)]  # small: dozens of switches per chunk
    request: Any = _Body(pieces)

    try:
        # A late claim: the first pieces wait in the buffers, then go out in order.
        asyncio.run(_receive_with(request, sink, buffers, claim_after_s=claim_after_s))
        digests = sink.finish()
    finally:
        sink.close()

    assert digests.crc32c == crc32c_digest(data)
    assert digests.sha256 == (hashlib.sha256(data).digest() if sha256 else None)
    assert path.read_bytes() == b"\xff" * 100 + data


def test_a_refused_claim_ends_the_body_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"")
    pieces = [bytes(1000)] * 50
    read: list[int] = []

    class Counting(_Body):
        async def stream(self) -> AsyncIterator[bytes]:
            async for piece in super().stream():
                read.append(len(piece))
                yield piece

    async def refused() -> OpenChunk:
        await asyncio.sleep(0)
        raise upload_chunks.ChunkBusyError(0, 5)

    async def run() -> None:
        opening = asyncio.ensure_future(refused())
        await receive(Counting(pieces), None, opening, [bytearray(4000)] * 2)  # type: ignore[arg-type]

    with pytest.raises(upload_chunks.ChunkBusyError):
        asyncio.run(run())

    assert path.read_bytes() == b""
    assert len(read) < len(pieces)  # the rest of the body was never read


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small chunks, no background worker."""
    return settings.model_copy(update={"upload_chunk_bytes": 64 * 1024, "job_workers": False})


@pytest.mark.integration
def test_a_chunk_is_synced_while_the_next_travels_and_never_counted_durable_before(
    client: TestClient, app: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _item = _setup(database, _secret(app))
    chunk = 64 * 1024
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 600  # 2 chunks and a bit
    url = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()["url"]
    public_id = url.rsplit("/", 1)[1]
    covered: list[int] = []  # for each finished sync: the file's size when it began

    def recording(real: Any) -> Any:
        def sync(fd: int) -> None:
            size = os.fstat(fd).st_size
            real(fd)
            covered.append(size)

        return sync

    monkeypatch.setattr(os, "fdatasync", recording(os.fdatasync))
    monkeypatch.setattr(os, "fsync", recording(os.fsync))
    seen: list[tuple[int, int]] = []

    for offset in range(0, len(data), chunk):
        response = client.patch(
            url, content=data[offset : offset + chunk], headers={"Upload-Offset": str(offset)}
        )
        assert response.status_code == 204, response.text
        with database.session() as db:
            upload = uploads.upload_by_public_id(db, public_id)
            seen.append((upload.received, upload.synced))
        # Never counted durable before a finished sync covered it...
        assert upload.synced <= max(covered, default=0)
        # ...and at most the chunk just answered is not yet known durable.
        assert upload.received - upload.synced <= chunk

    assert seen == [(chunk, 0), (2 * chunk, chunk), (len(data), len(data))]
    assert covered[-1] == len(data)  # the finished file, synced whole before its checks


@pytest.mark.integration
def test_after_a_crash_the_protocol_resumes_from_the_last_chunk_on_disk(
    client: TestClient, app: Any, database: Database
) -> None:
    token, _item = _setup(database, _secret(app))
    chunk = 64 * 1024
    data = b"\x00\x00\x00\x18ftypmp42" + random.Random(5).randbytes(4 * chunk)
    url = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()["url"]
    public_id = url.rsplit("/", 1)[1]
    for offset in range(0, 3 * chunk, chunk):
        response = client.patch(
            url, content=data[offset : offset + chunk], headers={"Upload-Offset": str(offset)}
        )
        assert response.status_code == 204, response.text
    with database.session() as db:
        # As if written before the machine lost power, and lost with it.
        upload = uploads.upload_by_public_id(db, public_id)
        upload.synced_on = "the boot before the crash"
        path = app.state.upload_store.path_of(upload)
    with path.open("r+b") as handle:
        handle.truncate(2 * chunk + 10)

    resumed = client.patch(
        url, content=data[3 * chunk : 4 * chunk], headers={"Upload-Offset": str(3 * chunk)}
    )
    head = client.head(url)

    assert resumed.status_code == 409
    assert resumed.json()["offset"] == 2 * chunk
    assert head.headers["Upload-Offset"] == str(2 * chunk)
    for offset in range(2 * chunk, len(data), chunk):
        response = client.patch(
            url, content=data[offset : offset + chunk], headers={"Upload-Offset": str(offset)}
        )
        assert response.status_code == 204, response.text
    assert path.read_bytes() == data
