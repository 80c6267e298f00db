"""The edge: what every request is checked for before a route sees it, and the last answer.

Nothing malformed may reach SQL or the file system: a NUL byte in a slug made PostgreSQL
raise, an id past 2**63 overflowed SQLite, a 5,000-byte file name made the kernel refuse
the path. `EdgeMiddleware` refuses such requests before routing, the typed parameters
below refuse out-of-range ids and malformed slugs at the route, `TextFieldGuard` refuses
control characters in form and JSON text, and whatever still goes wrong answers a short
500 while the log keeps one traceback per kind of failure per minute, not one a request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Path, Query
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitcast.domain.programme import SLUG_RE

log = logging.getLogger(__name__)

# Ids are INTEGER columns: 32-bit on PostgreSQL ("integer out of range" past this), and
# SQLite cannot even bind a Python int past 2**63 (OverflowError).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[
    int, Path(ge=1, le=MAX_ROW_ID, description=f"A whole number from 1 to {MAX_ROW_ID}.")
]
OptionalRowId = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
Slug = Annotated[str, Path(pattern=SLUG_RE.pattern, description="A summit's address name.")]

# Longer paths answer 414 before routing. Our longest real ones (a speaker's link plus an
# upload's preview, an HLS segment) are under 300 bytes; 2 KiB is what proxies allow.
MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 4096
# NAME_MAX on Linux: a longer path segment is no file and no id, whatever the route.
MAX_SEGMENT_BYTES = 255
# C0 control characters and DEL: never part of a path, an id, a slug or a query.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x1f\x7f]")
# In form and JSON text: the same, but tab, line feed and carriage return (a textarea
# sends CR LF) are ordinary text.
_FIELD_CONTROL_BYTES = re.compile(b"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same characters as JSON escapes, counting only a backslash that is not itself
# escaped ("\\u0000" is the six characters \u0000, which are fine).
_JSON_CONTROL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF])")

# Forms that check their own text and answer the form again with the field marked and
# what the person typed kept (the location registration: forms.location_input).
SELF_CHECKED = re.compile(r"^/s/[^/]+/register$")

BAD_CHARACTER = (
    "The address holds a control character (such as a NUL byte, %00), "
    "which no page here has: check the link."
)
BAD_FIELD = (
    "A field holds a control character (such as a NUL byte), which is never valid "
    "text here: remove it and send the form again."
)
PATH_TOO_LONG = f"The address is longer than {MAX_PATH_BYTES} bytes: no page here has one."
QUERY_TOO_LONG = f"The address's query is longer than {MAX_QUERY_BYTES} bytes."
NO_SUCH_PAGE = "No such page."
BAD_DATA = (
    "A value in the request cannot be stored as given (a number too large, or a "
    "character the database refuses): check what you sent."
)
SERVER_ERROR = "Something went wrong on our side. It has been logged; try again in a moment."


def wants_json(request: Request) -> bool:
    """Whether to answer this request's errors in JSON (API clients) rather than a page."""
    path = request.url.path
    # The speaker upload protocol is an API too, whatever the client's Accept header says.
    if path.startswith("/speak/") and "/uploads" in path:
        return True
    return path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str, **headers: str) -> Response:
    """A JSON error for API clients, else the error page; usable before the session exists."""
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    templates = getattr(getattr(request.app, "state", None), "templates", None)
    if templates is None:
        return PlainTextResponse(message, status_code=status, headers=headers)
    if "session" not in request.scope:
        # Answered before SessionMiddleware ran: the page is rendered as for a visitor.
        request = Request({**request.scope, "session": {}}, request.receive)
    context = {
        "logged_in": isinstance(request.session.get("user_id"), int),
        "message": message,
        "status": status,
    }
    page: Response = templates.TemplateResponse(request, "error.html", context, status_code=status)
    page.headers.update(headers)
    return page


def refusal(scope: Scope) -> tuple[int, str] | None:
    """(status, message) for a request whose path or query no route may see, else None."""
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    if len(raw) > MAX_PATH_BYTES:
        return 414, PATH_TOO_LONG
    if _CONTROL.search(path):
        return 400, BAD_CHARACTER
    # Only a long path can hold a long segment (the raw path, percent-encoded, is at least
    # as long in bytes as the decoded one): the usual request pays one len().
    if len(raw) > MAX_SEGMENT_BYTES and any(
        len(part.encode()) > MAX_SEGMENT_BYTES for part in path.split("/")
    ):
        return 404, NO_SUCH_PAGE
    query: bytes = scope.get("query_string", b"")
    if query:
        if len(query) > MAX_QUERY_BYTES:
            return 414, QUERY_TOO_LONG
        if _CONTROL_BYTES.search(unquote_to_bytes(query)):
            return 400, BAD_CHARACTER
    return None


class ErrorSampler:
    """Logs the first traceback of each kind of unexpected error per window; counts the rest."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.total = 0
        # kind of error → [when its window opened, how many were not logged since]
        self._windows: dict[str, list[float]] = {}

    def record(self, exc: BaseException, where: str) -> None:
        """Count one unexpected error; log it with its traceback unless its kind just was."""
        self.total += 1
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        now = self.clock()
        window = self._windows.get(kind)
        if window is not None and now - window[0] < self.window_s:
            window[1] += 1
            return
        if window is not None and window[1]:
            log.error(
                "%d more like it (%s) in the %.0f s after the last traceback",
                window[1],
                kind,
                now - window[0],
            )
        self._windows[kind] = [now, 0]
        # `where` is a route template, never the path: paths hold speakers' link tokens.
        log.error("unexpected error answering %s: 500", where, exc_info=exc)


def _where(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None) or "an unrouted request"
    return f"{scope.get('method', 'WEBSOCKET')} {template}"


class EdgeMiddleware:
    """Refuses malformed paths and queries before routing; answers 500 for what escapes."""

    # Added in create_app just inside HeartbeatFastPath, so heartbeats and presence
    # sockets never pay for it; every other request pays a regex over its path.

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: tuple[tuple[bytes, bytes], ...],
        sampler: ErrorSampler | None = None,
    ) -> None:
        self.app = app
        # Its own answers leave before SecurityHeadersMiddleware: it adds the same headers.
        self.headers = headers
        self.sampler = sampler or ErrorSampler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a refused request here; pass the rest on and catch what they raise."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = refusal(scope)
        if refused is not None:
            if scope["type"] == "websocket":
                # Closing before accepting answers the handshake with 403.
                await send({"type": "websocket.close", "code": 1008})
                return
            status, message = refused
            await self._answer(scope, receive, send, status, message)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # Not re-raised: the server would log its traceback once per request, and a
            # flood of one bad request would flood the log. The sampler keeps a sample.
            self.sampler.record(exc, _where(scope))
            if started:
                return  # half an answer is out: the server ends the connection
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011})
                return
            await self._answer(scope, receive, send, 500, SERVER_ERROR)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message["headers"]}
                message["headers"] = [
                    *message["headers"],
                    *((name, value) for name, value in self.headers if name not in names),
                ]
            await send(message)

        response = error_response(Request(scope, receive), status, message)
        await response(scope, receive, send_with_headers)


class _ControlCharacterError(HTTPException):
    """Raised while a form or JSON body is read, when its text holds a control character."""

    def __init__(self) -> None:
        super().__init__(status_code=400, detail=BAD_FIELD)


class TextFieldGuard:
    """Refuses form and JSON bodies whose text holds NUL or another control character."""

    # PostgreSQL refuses NUL in text ("A string literal cannot contain NUL"), and no name,
    # e-mail or place ever holds a control character. Checked once the body is whole;
    # installed inside BodyLimitMiddleware, so the bodies it keeps are capped. Multipart
    # bodies (a photo, a schedule file) are not read here: their text is the database's
    # to refuse, which answers 400 through `handle_data_error`.

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, checking its body as the route reads it if it is text."""
        check = _body_check(scope) if scope["type"] == "http" else None
        if check is None:
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = []

        async def checking_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False) and check(b"".join(parts)):
                    # Raised inside the route's body reading: its exception handler
                    # answers it like any HTTP error (a page, or JSON for the API).
                    raise _ControlCharacterError
            return message

        await self.app(scope, checking_receive, send)


def _form_has_control(body: bytes) -> bool:
    return bool(_FIELD_CONTROL_BYTES.search(unquote_to_bytes(body)))


def _json_has_control(body: bytes) -> bool:
    # Raw, only DEL can be in a valid JSON string (C0 characters must be escaped there).
    if _FIELD_CONTROL_BYTES.search(body):
        return True
    return b"\\u00" in body and bool(_JSON_CONTROL_ESCAPE.search(body))


def _body_check(scope: Scope) -> Callable[[bytes], bool] | None:
    if scope["method"] in ("GET", "HEAD", "OPTIONS") or SELF_CHECKED.match(scope["path"]):
        return None
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
            break
    if content_type == b"application/x-www-form-urlencoded":
        return _form_has_control
    if content_type == b"application/json" or content_type.endswith(b"+json"):
        return _json_has_control
    return None


async def handle_http_error(request: Request, exc: Exception) -> Response:
    """404, 405, 413 … raised by routing or a body cap: a page for browsers, JSON for APIs."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=headers)
    message = NO_SUCH_PAGE if exc.status_code == 404 else str(exc.detail)
    if wants_json(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    return error_response(request, exc.status_code, message, **headers)


async def handle_data_error(request: Request, exc: Exception) -> Response:
    """A value the database refuses (NUL in text, an integer out of range): 400, not 500."""
    # No traceback and no parameters in the log: the fault is the request's, and the
    # parameters may hold what a person typed.
    log.info("database refused a value (%s): 400", type(exc).__name__)
    return error_response(request, 400, BAD_DATA)


def install_edge_handlers(app: FastAPI, *, data_errors: tuple[type[Exception], ...] = ()) -> None:
    """Register the edge's exception handlers on the app (the middleware is added apart).

    ``data_errors``: the database's "value refused" errors (SQLAlchemy's DataError, handed
    in by the composition root: the web edge imports no database library), answered 400.
    """
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        HTTPException: handle_http_error,
        # SQLite's driver cannot bind an int past 2**63 and raises this before SQL runs.
        OverflowError: handle_data_error,
    }
    handlers.update(dict.fromkeys(data_errors, handle_data_error))
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
