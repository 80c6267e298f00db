"""A speaker's chunk PATCH: its body received into lent buffers, and the fast path past the app.

``serve_chunk`` answers PATCH /speak/{token}/uploads/{id} (web/routes/speakers.py routes
it); ``UploadChunkFastPath``, installed in create_app next to HeartbeatFastPath, hands it
the same requests before the app's stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitcast.domain import uploads as upload_rules
from summitcast.domain.uploads import UploadState
from summitcast.errors import ConflictError, SummitcastError
from summitcast.services import upload_chunks
from summitcast.services.upload_chunks import TAKEN_OVER, ChunkBusyError
from summitcast.services.upload_protocol import (
    OFFSET_HEADER,
    OpenChunk,
    UploadProtocol,
    WriteBuffer,
)
from summitcast.web.security import SECURITY_HEADERS

# No shared cache may keep a portal answer: the token is in the URL.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def serve_chunk(
    request: Request, protocol: UploadProtocol, token: str, upload_id: str
) -> Response:
    """Store one chunk at Upload-Offset, written and checked as it arrives; 409 if it does not fit.

    The request holds no database transaction while the body trickles in over a slow
    link: one short transaction claims the chunk before the body, one records it after.
    """
    # The claim's transaction runs while the first MiBs of the body arrive: they wait in
    # the chunk's buffers, unwritten, until the claim is known (~3 ms a chunk otherwise).
    opening: asyncio.Future[OpenChunk] = asyncio.ensure_future(
        run_in_threadpool(protocol.open_chunk, token, upload_id, request.headers)
    )
    buffers = protocol.lend_buffers()
    try:
        await receive(request, protocol, opening, buffers)
        outcome = await run_in_threadpool(protocol.end_chunk, await opening)
    except upload_rules.OffsetMismatchError as exc:
        return _resume_from(exc.message, exc.offset)
    except ChunkBusyError as exc:
        return _resume_from(exc.message, exc.offset, retry_after_s=exc.retry_after_s)
    except ClientDisconnect:
        await _abandon(protocol, opening)
        return Response(status_code=400)  # nobody is listening any more
    except BaseException:
        await _abandon(protocol, opening)
        raise
    finally:
        if opening.done() and not opening.cancelled() and opening.exception() is None:
            opening.result().sink.close()
        protocol.give_back(buffers)
    if outcome.state == UploadState.REJECTED:
        return JSONResponse(
            {
                "detail": " ".join(
                    f["message"] for f in outcome.findings if f["level"] == "problem"
                ),
                "state": outcome.state,
                "findings": outcome.findings,
            },
            status_code=422,
            headers=PRIVATE,
        )
    headers = {**PRIVATE, OFFSET_HEADER: str(outcome.received), "Upload-State": outcome.state}
    return Response(status_code=204, headers=headers)


class _Receiver:
    """Copies a chunk's body into free buffers while a thread writes and checks the full ones.

    Received pieces (64-256 KiB each) are copied, not kept: see ChunkFiles.lend_buffers.
    One write at a time (the checksum runs in order), carrying every buffer filled
    meanwhile: with two buffers the socket waited on the disk ~40% of a chunk's time.
    Nothing is written before `opening` (the claim) is done; a refusal ends the body.
    """

    def __init__(
        self,
        protocol: UploadProtocol,
        opening: asyncio.Future[OpenChunk],
        buffers: Sequence[WriteBuffer],
    ) -> None:
        self.protocol = protocol
        self.opening = opening
        self.free = [memoryview(buffer) for buffer in buffers]
        self.size = len(buffers[0])
        self.current, self.filled = self.free.pop(), 0
        self.full: list[memoryview] = []  # filled, waiting for the claim or the write in flight
        self.in_write: list[memoryview] = []
        self.writing: asyncio.Future[None] | None = None
        self.renew_at = time.monotonic() + upload_chunks.CLAIM_RENEW_S

    async def write_done(self) -> None:
        assert self.writing is not None
        await self.writing
        self.free.extend(self.in_write)
        self.writing, self.in_write = None, []

    async def write_full(self) -> None:
        sink = (await self.opening).sink
        self.in_write, self.full = self.full, []
        self.writing = asyncio.ensure_future(run_in_threadpool(sink.write, self.in_write))

    async def renew(self) -> None:
        """Keep the claim of a slow chunk alive (a chunk may take minutes on a slow link)."""
        # Checked on every piece, so no other node takes the chunk over while bytes still come.
        sink = (await self.opening).sink
        renewed_at = time.monotonic()
        if sink.ticket.claim and not await run_in_threadpool(self.protocol.renew, sink.ticket):
            raise ConflictError(TAKEN_OVER)
        sink.claim_renewed(renewed_at)
        self.renew_at = renewed_at + upload_chunks.CLAIM_RENEW_S

    async def take(self, rest: memoryview) -> None:
        """Copy one received piece into the buffers, writing those it fills."""
        while rest:
            step = min(len(rest), self.size - self.filled)
            self.current[self.filled : self.filled + step] = rest[:step]
            self.filled += step
            rest = rest[step:]
            if self.filled < self.size:
                continue
            self.full.append(self.current)
            if self.writing is not None and (self.writing.done() or not self.free):
                await self.write_done()  # no buffer left to fill: wait for the disk
            if self.writing is None and (self.opening.done() or not self.free):
                await self.write_full()
            if not self.free:
                await self.write_done()  # every buffer went into this write (a late claim)
            self.current, self.filled = self.free.pop(), 0

    async def flush(self) -> None:
        """Write what is left once the body ended."""
        if self.writing is not None:
            await self.write_done()
        if self.filled:
            self.full.append(self.current[: self.filled])
        if self.full:
            await self.write_full()
            await self.write_done()


async def receive(
    request: Request,
    protocol: UploadProtocol,
    opening: asyncio.Future[OpenChunk],
    buffers: Sequence[WriteBuffer],
) -> None:
    """Copy the body into free buffers while a thread writes and checks the full ones."""
    receiver = _Receiver(protocol, opening, buffers)
    try:
        async for piece in request.stream():
            if time.monotonic() > receiver.renew_at:
                await receiver.renew()
            if opening.done() and opening.exception() is not None:
                break  # refused (an offset, a busy chunk, a link): answered without the rest
            await receiver.take(memoryview(piece))
        await receiver.flush()
    finally:
        writing = receiver.writing
        if writing is not None and not writing.done():
            # The buffers are lent again after this returns: never under a running write.
            with contextlib.suppress(BaseException):
                await asyncio.shield(writing)


async def _abandon(protocol: UploadProtocol, opening: asyncio.Future[OpenChunk]) -> None:
    """Give up the chunk's claim, if the chunk got one."""
    try:
        chunk = await asyncio.shield(opening)
    except BaseException:
        return  # refused before any claim: nothing to give up
    await run_in_threadpool(protocol.abandon, chunk.sink.ticket)


def _resume_from(message: str, offset: int, *, retry_after_s: int | None = None) -> Response:
    headers = {**PRIVATE, OFFSET_HEADER: str(offset)}
    body: dict[str, Any] = {"detail": message, "offset": offset}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
        body["retry_after_s"] = retry_after_s
    return JSONResponse(body, status_code=409, headers=headers)


class UploadChunkFastPath:
    """Serves PATCH /speak/{token}/uploads/{id} with serve_chunk; passes the rest on."""

    # A chunk of 8 MiB arrives in ~130 pieces of 64 KiB: each piece went through the body
    # cap's and the request's receive wrappers, and each chunk through the session,
    # routing past ~80 routes and dependency solving, ~0.2 s of server CPU per GiB
    # (benchmarks/README.md, upload). The route needs none of it: the link in its path
    # authenticates it (no session), the chunk plan refuses any length but the chunk's
    # own (the body cap), and its errors are answered here as the app answers them.

    def __init__(
        self,
        app: ASGIApp,
        *,
        protocol: UploadProtocol,
        headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS,
    ) -> None:
        self.app = app
        self.protocol = protocol
        self.headers = headers  # security.security_headers(): HSTS in production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a chunk PATCH here; pass everything else on."""
        ids = _chunk_ids(scope)
        if ids is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await serve_chunk(request, self.protocol, *ids)
        except SummitcastError as exc:
            # The app's own handler: the same JSON body and status as on the routed path.
            handler = scope["app"].exception_handlers[SummitcastError]
            response = await handler(request, exc)
        except Exception as exc:
            # The database away (a restart): the app's 503 with Retry-After, not a 500, by
            # the handler the app registered for that error; anything else goes on up.
            handlers = scope["app"].exception_handlers
            kind = next((k for k in type(exc).__mro__ if k in handlers), None)
            if kind is None or kind is Exception:
                raise
            response = await handlers[kind](request, exc)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message["headers"]}
                message["headers"] = [
                    *message["headers"],
                    *((name, value) for name, value in self.headers if name not in names),
                ]
            await send(message)

        await response(scope, receive, send_with_headers)


def _chunk_ids(scope: Scope) -> tuple[str, str] | None:
    """(token, upload id) of a chunk PATCH, else None."""
    if scope["type"] != "http" or scope["method"] != "PATCH":
        return None
    # "/speak/{token}/uploads/{upload_id}", each part non-empty, as the route matches it.
    parts = scope["path"].split("/")
    if len(parts) != 5 or parts[0] or parts[1] != "speak" or parts[3] != "uploads":
        return None
    if not parts[2] or not parts[4]:
        return None
    return parts[2], parts[4]
