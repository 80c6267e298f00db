"""UploadChunkFastPath: a speaker's chunk PATCH goes straight to its route, past the app's stack.

Installed in create_app next to HeartbeatFastPath (``app.add_middleware(UploadChunkFastPath)``).
"""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitcast.errors import SummitcastError
from summitcast.web.routes import speakers
from summitcast.web.security import SECURITY_HEADERS


class UploadChunkFastPath:
    """Serves PATCH /speak/{token}/uploads/{id} with speakers.upload_chunk; passes the rest on."""

    # A chunk of 8 MiB arrives in ~130 pieces of 64 KiB: each piece went through the body
    # cap's and the request's receive wrappers, and each chunk through the session,
    # routing past ~80 routes and dependency solving, ~0.2 s of server CPU per GiB
    # (benchmarks/README.md, upload). The route needs none of it: the link in its path
    # authenticates it (no session), the chunk plan refuses any length but the chunk's
    # own (the body cap), and its errors are answered here as the app answers them.

    def __init__(
        self, app: ASGIApp, *, headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS
    ) -> None:
        self.app = app
        self.headers = headers  # security.security_headers(): HSTS in production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a chunk PATCH here; pass everything else on."""
        ids = _chunk_ids(scope)
        if ids is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await speakers.upload_chunk(request, *ids)
        except SummitcastError as exc:
            # The app's own handler: the same JSON body and status as on the routed path.
            handler = scope["app"].exception_handlers[SummitcastError]
            response = await handler(request, exc)
        except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
            # The database away (a restart): the app's 503 with Retry-After, not a 500.
            # That handler raises anything else again, for the app's general handling.
            handlers = scope["app"].exception_handlers
            handler = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
            response = await handler(request, exc)

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
