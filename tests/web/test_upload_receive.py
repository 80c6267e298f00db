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
from summitcast.domain.uploads import UploadKind, crc32c_digest
from summitcast.services import uploads
from summitcast.services.uploads import ChunkSink, ChunkTicket
from summitcast.storage.database import Database
from summitcast.web.routes.speakers import _receive
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


def _ticket(path: Path, offset: int, length: int) -> ChunkTicket:
    return ChunkTicket(
        upload_id=1,
        path=path,
        offset=offset,
        length=length,
        index=1,
        claim="held",
        stored_digest=b"",
        kind=UploadKind.PROGRAMME,
        sniff=False,
        size=offset + length,
        digests_before=b"",
    )


@pytest.mark.parametrize(("seed", "sha256"), [(1, False), (2, False), (3, True)])
def test_pieces_of_any_size_cross_the_buffers_into_file_and_checksums(
    seed: int, sha256: bool, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(50_000)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    path = tmp_path / "upload"
    path.write_bytes(b"\xff" * 100)  # the chunk before, stored already
    sink = ChunkSink(_ticket(path, 100, len(data)), sha256=sha256)
    buffers = (bytearray(1000), bytearray(1000))  # small: dozens of switches per chunk
    request: Any = _Body(pieces)

    try:
        asyncio.run(_receive(request, database=None, sink=sink, buffers=buffers))  # type: ignore[arg-type]
        digests = sink.finish()
    finally:
        sink.close()

    assert digests.crc32c == crc32c_digest(data)
    assert digests.sha256 == (hashlib.sha256(data).digest() if sha256 else None)
    assert path.read_bytes() == b"\xff" * 100 + data


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small chunks, no background worker."""
    return settings.model_copy(update={"upload_chunk_bytes": 64 * 1024, "job_workers": False})


@pytest.mark.integration
def test_chunk_is_on_disk_before_its_offset_is_recorded(
    client: TestClient, app: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _item = _setup(database, _secret(app))
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 600
    url = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()["url"]
    public_id = url.rsplit("/", 1)[1]
    synced_at: list[int] = []  # the recorded offset at each sync of a chunk's bytes

    def fdatasync(fd: int) -> None:
        with database.session() as db:
            synced_at.append(uploads.upload_by_public_id(db, public_id).received)
        real_fdatasync(fd)

    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", fdatasync)

    for offset in range(0, len(data), 64 * 1024):
        response = client.patch(
            url, content=data[offset : offset + 64 * 1024], headers={"Upload-Offset": str(offset)}
        )
        assert response.status_code == 204, response.text

    assert synced_at == [0, 64 * 1024, 128 * 1024]
