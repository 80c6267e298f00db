"""The presence wire protocol of a location screen: what each outcome is answered with.

Wire protocol (frontend/src/live.js, ``locationScreen``; the message and its reasons are
domain/presence_wire.py, the token domain/presence.py):

- WebSocket ``/live/ws``. The server greets with
  ``{"type": "hello", "interval_s": <jittered seconds>, "timeout_s": <seconds>}``.
  The screen then sends ``{"type": "hb", "token": "hb1.…"}`` every interval (other
  fields of the message are ignored but ``ack``: the token alone is checked). Nothing
  is sent back for an accepted heartbeat; a refused one gets
  ``{"type": "error", "reason": <Reason>}``. A client that adds ``"ack": true``
  to a heartbeat gets ``{"type": "ack", "seq": n}`` once it is counted: location
  screens ask for it to know that their socket is alive (a dead one still takes sends),
  the load tool to measure latency. A pending location keeps its socket (so approval
  takes effect at the next beat, with no reconnect storm).
- Refusals that retrying cannot change, only an organiser can (a new link, approval
  again), close the socket with a code of the application's range (RFC 6455 §7.4.2)
  and the reason as a word, so the screen backs off to minutes and tells its host what
  to do: 4401 (``bad_signature``, ``unknown_location``), 4403 (``revoked``). 1008 (a
  policy violation) stays for what no honest screen sends (``malformed``,
  ``wrong_location``). A screen closed with 1008 after its hello used to retry every
  ~0.75 s forever.
- A screen that opens ``/live/ws?push=on_air`` is also sent
  ``{"type": "on_air", …}`` (what it plays, now and next) once its first heartbeat
  counts and whenever the broadcast changes (web/on_air.py); others never get one.
- While a back-end (Redis, the database) is unreachable a heartbeat gets
  ``{"type": "error", "reason": "unavailable"}`` and the socket stays open: the
  screen's next heartbeats count again as soon as the back-end is back.
- HTTP fallback: ``POST /live/heartbeat`` with the same JSON; 200
  ``{"ok": true, "interval_s": …}``, 4xx ``{"ok": false, "reason": …}``, or 503
  with Retry-After and reason ``unavailable`` during a back-end outage. Figure
  endpoints answer the same 503 while a back-end is away.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response

from summitcast.domain.presence_wire import Reason
from summitcast.services.live import OUTAGE_ERRORS, LiveService

SOCKET_PATH = "/live/ws"
HEARTBEAT_PATH = "/live/heartbeat"
# A screen that opens /live/ws?push=on_air is also sent what is on air (web/on_air.py);
# other clients (the load tool, older screens) get the protocol unchanged.
PUSH_ON_AIR = "on_air"

LINK_NOT_VALID = 4401  # a wrong or re-issued secret (bad signature), or no such location
REVOKED = 4403
REFUSED_CLOSE_CODES = {
    Reason.BAD_SIGNATURE: LINK_NOT_VALID,
    Reason.UNKNOWN: LINK_NOT_VALID,
    Reason.REVOKED: REVOKED,
}
# Refusals after which a socket is closed with 1008: no honest screen sends these.
CLOSING = frozenset({Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN, Reason.WRONG_LOCATION})

_UNAVAILABLE_TEXT = json.dumps({"type": "error", "reason": Reason.UNAVAILABLE.value})

# HTTP status of a refused heartbeat on the fallback path (others: 403).
_STATUS = {Reason.REPLAY: 409, Reason.MALFORMED: 400, Reason.STALE: 400, Reason.FUTURE: 400}
_OK = b'{"ok":true,"interval_s":%s}'
# Seconds a fallback client waits before its next try while a back-end is away.
RETRY_AFTER_S = "2"
UNAVAILABLE_BODY = json.dumps(
    {
        "ok": False,
        "reason": Reason.UNAVAILABLE.value,
        "detail": "Live presence is briefly unavailable; try again in a few seconds.",
    }
).encode()
MAX_BODY = 16 * 1024  # a heartbeat is ~200 bytes; the domain refuses more than 1 KiB
HEARTBEAT_TOO_LARGE = b'{"ok":false,"reason":"malformed","detail":"A heartbeat is at most 16 KiB."}'

Answer = tuple[int, bytes, list[tuple[str, str]]]  # status, JSON body, extra headers


@dataclass(frozen=True, slots=True)
class Reply:
    """What the socket does after one message: whom it speaks for, what to send, whether to end."""

    bound: str | None
    text: str | None = None
    close: bool = False
    close_code: int = 1008
    close_reason: str = "refused"


def hello_text(live: LiveService) -> str:
    """The greeting a screen's socket opens with."""
    return json.dumps(live.hello())


async def answer(live: LiveService, text: str, bound: str | None) -> Reply:
    """Handle one message of a location screen's socket."""
    try:
        outcome = await live.heartbeat_message(text, bound_to=bound)
    except OUTAGE_ERRORS as error:
        # Redis or the database is away: keep the socket (a reconnect storm of every
        # screen would follow otherwise); the next beats count once it is back.
        live.outages.failed("heartbeat", error)
        return Reply(bound, _UNAVAILABLE_TEXT)
    if outcome.ok:
        # One socket speaks for one location: a second id on it is refused.
        ack = None if outcome.ack_seq is None else f'{{"type":"ack","seq":{outcome.ack_seq}}}'
        return Reply(outcome.location_id, ack)
    reason = outcome.reason or Reason.MALFORMED
    refusal = json.dumps({"type": "error", "reason": reason.value})
    if reason in REFUSED_CLOSE_CODES:
        return Reply(bound, refusal, True, REFUSED_CLOSE_CODES[reason], reason.value)
    return Reply(bound, refusal, close=reason in CLOSING)


async def answer_heartbeat(live: LiveService, body: bytes) -> Answer:
    """The HTTP fallback's answer to one heartbeat body: status, JSON bytes, extra headers."""
    try:
        outcome = await live.heartbeat_message(body.decode("utf-8", "replace"))
    except OUTAGE_ERRORS as error:
        live.outages.failed("heartbeat", error)
        return 503, UNAVAILABLE_BODY, [("retry-after", RETRY_AFTER_S)]
    if outcome.ok:
        return 200, _OK % str(live.hello()["interval_s"]).encode(), []
    reason = outcome.reason or Reason.MALFORMED
    refusal = json.dumps({"ok": False, "reason": reason.value}).encode()
    return _STATUS.get(reason, 403), refusal, []


def unavailable() -> Response:
    """503 with Retry-After while a back-end is away (the fallback clients retry on it)."""
    return Response(
        UNAVAILABLE_BODY,
        503,
        headers={"Retry-After": RETRY_AFTER_S},
        media_type="application/json",
    )


def backend_unavailable() -> Response:
    """The app's answer to any other request that met a presence outage: 503, Retry-After."""
    return JSONResponse(
        {"detail": "Live presence is briefly unavailable; try again."},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )
