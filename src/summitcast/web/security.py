"""CSRF tokens, security headers and request-size limits for every response."""

from __future__ import annotations

import hmac
import secrets

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitcast.errors import PermissionDeniedError
from summitcast.web.edge import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Everything is served by summitcast itself: no CDN, no third-party fonts or scripts.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Refuse an unsafe request whose CSRF token (form field or header) does not match."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and (
        content_type.startswith("application/x-www-form-urlencoded")
        or content_type.startswith("multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or sent is None or not hmac.compare_digest(expected, sent):
        raise PermissionDeniedError(
            "The form's security token is missing or has expired: reload the page and try again."
        )


# On every HTTP response (the heartbeat and upload fast paths add them themselves, and
# all three add HSTS in production: security_headers below).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"geolocation=(), microphone=(), camera=(self)"),
)


# Production: browsers keep to HTTPS for a year, subdomains included (RFC 6797). Sent on
# every production response, since production is served over HTTPS only (directly or by
# the TLS proxy, config.Settings refuses anything else); never in development, where it
# would pin a developer's http://127.0.0.1 to HTTPS (browsers ignore it over HTTP anyway).
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def security_headers(*, strict_transport: bool) -> tuple[tuple[bytes, bytes], ...]:
    """SECURITY_HEADERS, with HSTS when strict_transport (Settings.strict_transport)."""
    return (*SECURITY_HEADERS, HSTS_HEADER) if strict_transport else SECURITY_HEADERS


class SecurityHeadersMiddleware:
    """Adds CSP and the usual hardening headers to every HTTP response."""

    def __init__(
        self, app: ASGIApp, *, headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS
    ) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in self.headers:
                    if name not in names:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Answers 413 as soon as a request body grows past the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(scope, receive, send, self.max_bytes)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await _too_large(scope, receive, send, self.max_bytes)


class _BodyTooLargeError(HTTPException):
    """Raised inside the app when the streamed body passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"The request is larger than {limit // (1024 * 1024)} MiB, "
            "the most this server accepts.",
        )


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    message = (
        f"The request is larger than {limit // (1024 * 1024)} MiB, the most this server accepts."
    )
    # Before routing too: a backstage form gets the error page, an API client JSON.
    response = error_response(Request(scope, receive), 413, message, connection="close")
    await response(scope, receive, send)
