"""Error answers of the app: the error tree, bad input, and 503 while a back-end is away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response

from summitcast.errors import AuthenticationError, RateLimitedError, SummitcastError
from summitcast.web.edge import wants_json
from summitcast.web.templating import render

log = logging.getLogger(__name__)
UNAVAILABLE = "The service is briefly unavailable; try again in a few seconds."


def install_error_handlers(app: FastAPI) -> None:
    """Answer the SummitcastError tree and bad input as JSON for API clients, a page otherwise."""
    app.add_exception_handler(SummitcastError, _summitcast_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


async def _summitcast_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SummitcastError)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if wants_json(request):
        body = {"detail": exc.message, **({"field": exc.field} if exc.field else {})}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)
    if isinstance(exc, AuthenticationError) and request.method == "GET":
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    page = render(
        request,
        "error.html",
        {"message": exc.message, "status": exc.status_code},
        status_code=exc.status_code,
    )
    # A browser's 429 page needs Retry-After as much as an API client does.
    page.headers.update(headers)
    return page


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}"
        for err in exc.errors()
    ]
    if wants_json(request):
        return JSONResponse({"detail": problems}, status_code=422)
    return render(
        request,
        "error.html",
        {"message": "; ".join(problems), "status": 422},
        status_code=422,
    )


def briefly_unavailable(request: Request) -> Response:
    """503 with Retry-After: JSON for API clients, a page for browsers."""
    if wants_json(request):
        body = {"detail": UNAVAILABLE}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    page = render(request, "error.html", {"message": UNAVAILABLE, "status": 503}, status_code=503)
    page.headers["Retry-After"] = "5"
    return page


def answer_503_while_away(
    app: FastAPI,
    what: str,
    errors: tuple[type[Exception], ...],
    *,
    is_outage: Callable[[BaseException], bool] = lambda _error: True,
    reply: Callable[[Request], Response] = briefly_unavailable,
) -> None:
    """Answer 503, not 500, for `errors` that mean the back-end `what` cannot be reached."""
    # One line an outage, no traceback: a restart of Redis or PostgreSQL is an operations
    # event, not a bug. The back-end's own error types come from the composition root.
    outage = OutageLine(what)

    async def unavailable(request: Request, exc: Exception) -> Response:
        if not is_outage(exc):
            raise exc  # a bad query, a locked SQLite file: the app's general error handling
        outage.failed(exc)
        return reply(request)

    for error in errors:
        app.add_exception_handler(error, unavailable)


class OutageLine:
    """One warning when a back-end becomes unreachable, then a tally at most every 10 s."""

    # A database restart under load fails hundreds of requests a second: a line (or a
    # traceback) for each would bury the log. The next success is not seen here, so an
    # outage counts as over after quiet_s without a failure.
    def __init__(self, what: str, every_s: float = 10.0, quiet_s: float = 5.0) -> None:
        self.what = what
        self.every_s = every_s
        self.quiet_s = quiet_s
        self.since = self.last_line = self.last_failure = 0.0
        self.unreported = 0

    def failed(self, error: BaseException) -> None:
        """Note one failed request; log the first of an outage and a tally now and then."""
        now = time.monotonic()
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if now - self.last_failure > self.quiet_s:
            self.since, self.last_line, self.unreported = now, now, 0
            log.warning("%s unavailable (%s); answering 503", self.what, first_line)
        else:
            self.unreported += 1
            if now - self.last_line >= self.every_s:
                log.warning(
                    "%s still unavailable after %.0f s (%d requests answered 503 since the"
                    " last line)",
                    self.what,
                    now - self.since,
                    self.unreported,
                )
                self.last_line, self.unreported = now, 0
        self.last_failure = now
