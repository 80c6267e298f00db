"""The chunk route's receive loop: pieces of any size land in the file and hash byte-exact."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from summitcast.domain.uploads import UploadKind
from summitcast.services.uploads import ChunkSink, ChunkTicket
from summitcast.web.routes.speakers import _receive


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pieces_of_any_size_cross_the_buffers_into_file_and_hash(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(50_000)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    path = tmp_path / "upload"
    path.write_bytes(b"\xff" * 100)  # the chunk before, stored already
    sink = ChunkSink(_ticket(path, 100, len(data)))
    buffers = (bytearray(1000), bytearray(1000))  # small: dozens of switches per chunk
    request: Any = _Body(pieces)

    try:
        asyncio.run(_receive(request, database=None, sink=sink, buffers=buffers))  # type: ignore[arg-type]
        digest = sink.finish()
    finally:
        sink.close()

    assert digest == hashlib.sha256(data).digest()
    assert path.read_bytes() == b"\xff" * 100 + data
