"""UploadChunkFastPath answers a chunk PATCH exactly as the routed app does, and only that."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.uploads import crc32c_digest
from summitcast.storage.database import Database
from summitcast.web.transport.uploads import UploadChunkFastPath
from tests.web.test_speaker_portal import _secret, _setup

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
HEAD = b"\x00\x00\x00\x18ftypmp42"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small chunks, no background worker."""
    return settings.model_copy(update={"upload_chunk_bytes": CHUNK, "job_workers": False})


@pytest.fixture
def fast(settings: Settings, database: Database) -> Iterator[tuple[TestClient, list[str]]]:
    """A client of the app behind the fast path, and the paths the fast path passed on."""
    app = create_app(settings, database=database)
    passed: list[str] = []

    async def routed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            passed.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    fast_path = UploadChunkFastPath(routed, protocol=app.state.upload_protocol)

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as Starlette sets it for the middleware it wraps
        await fast_path(scope, receive, send)

    with TestClient(outer, base_url="http://127.0.0.1") as client:
        yield client, passed


def _checksum(data: bytes) -> str:
    return "crc32c " + base64.b64encode(crc32c_digest(data)).decode()


def _conversation(client: TestClient, token: str) -> list[tuple[int, Any, dict[str, str]]]:
    """A speaker's chunk requests, good and bad; what each was answered."""
    data = (HEAD + bytes(range(256)) * (3 * CHUNK // 256))[: 2 * CHUNK + 1000]
    url = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()["url"]
    first, second, last = data[:CHUNK], data[CHUNK : 2 * CHUNK], data[2 * CHUNK :]
    requests = [
        ("0", first, _checksum(first)),
        ("0", first, _checksum(first)),  # again, as after a lost answer: compared, not stored
        (str(2 * CHUNK), last, _checksum(last)),  # a gap: 409 with the offset to resume from
        (str(CHUNK), second, _checksum(b"other")),  # damaged: 422
        (str(CHUNK), second + b"x", _checksum(second)),  # longer than a chunk: 422
        (str(CHUNK), second, _checksum(second)),
        (str(2 * CHUNK), last, _checksum(last)),  # the last: fsynced, checks queued
    ]
    answers = []
    for offset, body, checksum in requests:
        response = client.patch(
            url, content=body, headers={"Upload-Offset": offset, "Upload-Checksum": checksum}
        )
        headers = {
            name: response.headers.get(name, "")
            for name in ("upload-offset", "upload-state", "cache-control", "x-frame-options")
        }
        answers.append(
            (response.status_code, response.json() if response.content else None, headers)
        )
    forged = client.patch(
        url.replace(token, token[:-2] + "xx"), content=first, headers={"Upload-Offset": "0"}
    )
    answers.append((forged.status_code, forged.json(), {}))
    return answers


def test_chunk_patch_through_fast_path_is_answered_as_routed(
    client: TestClient, fast: tuple[TestClient, list[str]], app: Any, database: Database
) -> None:
    fast_client, passed = fast
    routed_token, _ = _setup(database, _secret(app))
    with database.session() as db:  # a second item's link, for the fast path's upload
        fast_token = _second_link(db, _secret(app))

    routed = _conversation(client, routed_token)
    served = _conversation(fast_client, fast_token)

    assert served == routed
    assert [status for status, _, _ in served] == [204, 204, 409, 422, 422, 204, 204, 404]
    assert served[-2][2]["upload-state"] == "checking"
    assert served[0][2]["x-frame-options"] == "DENY"
    assert all(not entry.startswith("PATCH") for entry in passed)
    assert any(entry.startswith("POST /speak/") for entry in passed)


def _second_link(db: Any, secret: bytes) -> str:
    from summitcast.services import programme, speakers

    summit = programme.get_summit(db, "portal")
    speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Bo Ek"))
    item = programme.add_item(db, summit.sessions[0], programme.ItemInput(title="Second"))
    invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=30)
    return speakers.invitation_token(invitation, secret)


def test_other_requests_pass_the_fast_path_by(fast: tuple[TestClient, list[str]]) -> None:
    fast_client, passed = fast

    fast_client.patch("/speak/abc/uploads", content=b"x")
    fast_client.patch("/speak/abc/uploads/id/more", content=b"x")
    fast_client.get("/speak/abc/uploads/id")

    assert passed == [
        "PATCH /speak/abc/uploads",
        "PATCH /speak/abc/uploads/id/more",
        "GET /speak/abc/uploads/id",
    ]
