"""Presence rules: signed heartbeat tokens, replay refusal, the online rule, client timing.

Token format (version 1), one ASCII string with five dot-separated fields::

    hb1.<location_id>.<epoch>.<seq>.<ts>.<sig>

- ``location_id``: 1-64 characters of ``[A-Za-z0-9_-]``, the location's public id.
- ``epoch``: 8-64 characters of ``[A-Za-z0-9_-]``, drawn at random by the location
  screen on every page load or connection (e.g. base64url of 16 random bytes).
- ``seq``: decimal integer, 0 <= seq < 2**53, strictly increasing within one epoch.
- ``ts``: the client's unix time in whole seconds, decimal, 0 <= ts < 2**53.
- ``sig``: base64url without padding (43 characters) of
  ``HMAC-SHA256(secret, canonical)`` where ``canonical`` is the UTF-8 of
  ``"summitcast-heartbeat-v1\\n" + location_id + "\\n" + epoch + "\\n" + seq + "\\n" + ts``.

Integers are capped at 2**53 so that a browser can produce them exactly with
JavaScript numbers (WebCrypto computes the HMAC on the location screen).

Replay: with several workers the last (epoch, seq) of each location lives in the
presence back-end (``Presence.check_and_store_seq`` applies ``is_replay``
atomically); ``verify_heartbeat`` then gets ``last_seen=None`` and checks the rest.

Clocks: the skew check compares ``ts`` with the server's *wall* clock (the only
clock a client can share); the online rule takes a ``now`` from one clock that
never jumps (``time.monotonic()`` in one process, or one shared clock such as
Redis ``TIME`` for several workers) and must not mix clocks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

TOKEN_VERSION = "hb1"  # noqa: S105 - a format tag, not a secret
_CANONICAL_PREFIX = "summitcast-heartbeat-v1"
MAX_INT = 2**53  # JavaScript's exact integer range
_LOCATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EPOCH = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Canonical decimals only (no leading zeros), so each heartbeat has exactly one token.
_DIGITS = re.compile(r"0|[1-9][0-9]{0,15}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")


class RandomSource(Protocol):
    """What the timing helpers need from a random generator (random.Random fits)."""

    def random(self) -> float:
        """Return a float in [0, 1)."""
        ...


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One parsed heartbeat token."""

    location_id: str
    epoch: str
    seq: int
    ts: int
    sig: str


@dataclass(frozen=True, slots=True)
class ReplayState:
    """The last accepted (epoch, seq) of one location."""

    epoch: str
    seq: int


class Refusal(StrEnum):
    """Why a heartbeat was refused."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    STALE = "stale"
    FUTURE = "future"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verify_heartbeat; on success ``state`` is what to store next."""

    heartbeat: Heartbeat | None
    refusal: Refusal | None
    state: ReplayState | None

    @property
    def ok(self) -> bool:
        """True when the heartbeat was accepted."""
        return self.refusal is None


def _check_fields(location_id: str, epoch: str, seq: int, ts: int) -> None:
    if not _LOCATION_ID.fullmatch(location_id):
        raise ValueError(f"location_id must match {_LOCATION_ID.pattern}: {location_id!r}")
    if not _EPOCH.fullmatch(epoch):
        raise ValueError(f"epoch must match {_EPOCH.pattern}: {epoch!r}")
    if not 0 <= seq < MAX_INT:
        raise ValueError(f"seq must be in [0, 2**53): {seq}")
    if not 0 <= ts < MAX_INT:
        raise ValueError(f"ts must be in [0, 2**53): {ts}")


def canonical_message(location_id: str, epoch: str, seq: int, ts: int) -> bytes:
    """Return the exact bytes that a heartbeat signature covers."""
    return f"{_CANONICAL_PREFIX}\n{location_id}\n{epoch}\n{seq}\n{ts}".encode()


def _signature(secret: bytes, location_id: str, epoch: str, seq: int, ts: int) -> str:
    digest = hmac.new(
        secret, canonical_message(location_id, epoch, seq, ts), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_heartbeat(secret: bytes, location_id: str, epoch: str, seq: int, ts: int) -> Heartbeat:
    """Build a signed heartbeat (what the location screen does, in Python for tests and tools)."""
    if not secret:
        raise ValueError("secret must not be empty")
    _check_fields(location_id, epoch, seq, ts)
    return Heartbeat(location_id, epoch, seq, ts, _signature(secret, location_id, epoch, seq, ts))


def encode_heartbeat(heartbeat: Heartbeat) -> str:
    """Return the wire form of a heartbeat token."""
    hb = heartbeat
    return f"{TOKEN_VERSION}.{hb.location_id}.{hb.epoch}.{hb.seq}.{hb.ts}.{hb.sig}"


def parse_heartbeat(token: str) -> Heartbeat | None:
    """Parse a token without checking its signature; None when it is not well formed."""
    # Bounded before splitting: tokens come straight from the network.
    if len(token) > 256:
        return None
    parts = token.split(".")
    if len(parts) != 6 or parts[0] != TOKEN_VERSION:
        return None
    _, location_id, epoch, seq_text, ts_text, sig = parts
    if not (
        _LOCATION_ID.fullmatch(location_id)
        and _EPOCH.fullmatch(epoch)
        and _DIGITS.fullmatch(seq_text)
        and _DIGITS.fullmatch(ts_text)
        and _SIG.fullmatch(sig)
    ):
        return None
    seq, ts = int(seq_text), int(ts_text)
    if seq >= MAX_INT or ts >= MAX_INT:
        return None
    try:
        # 43 base64url characters carry 258 bits: refuse encodings with stray low bits.
        raw = base64.urlsafe_b64decode(sig + "=")
    except binascii.Error:
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != sig:
        return None
    return Heartbeat(location_id, epoch, seq, ts, sig)


def is_replay(last_seen: ReplayState | None, epoch: str, seq: int) -> bool:
    """True when (epoch, seq) is not newer than the last accepted heartbeat of its epoch."""
    # A new epoch (page reload) starts a new sequence; an old token from another
    # epoch is still bounded by the timestamp skew check.
    return last_seen is not None and last_seen.epoch == epoch and seq <= last_seen.seq


def verify_heartbeat(
    token: str | Heartbeat,
    secret: bytes,
    now: float,
    last_seen: ReplayState | None,
    max_skew_s: float,
) -> Verdict:
    """Check form, signature, timestamp (against wall-clock ``now``) and replay of a heartbeat."""
    heartbeat = parse_heartbeat(token) if isinstance(token, str) else token
    if heartbeat is None:
        return Verdict(None, Refusal.MALFORMED, None)
    hb = heartbeat
    try:
        _check_fields(hb.location_id, hb.epoch, hb.seq, hb.ts)
    except ValueError:
        return Verdict(hb, Refusal.MALFORMED, None)
    if not secret:
        return Verdict(hb, Refusal.BAD_SIGNATURE, None)
    expected = _signature(secret, hb.location_id, hb.epoch, hb.seq, hb.ts)
    # Constant-time comparison: the signature must not leak through timing.
    if not hmac.compare_digest(expected.encode("ascii"), hb.sig.encode("ascii")):
        return Verdict(hb, Refusal.BAD_SIGNATURE, None)
    if now - hb.ts > max_skew_s:
        return Verdict(hb, Refusal.STALE, None)
    if hb.ts - now > max_skew_s:
        return Verdict(hb, Refusal.FUTURE, None)
    if is_replay(last_seen, hb.epoch, hb.seq):
        return Verdict(hb, Refusal.REPLAY, None)
    return Verdict(hb, None, ReplayState(hb.epoch, hb.seq))


def is_online(last_seen: float | None, now: float, timeout_s: float) -> bool:
    """True while the last valid heartbeat is younger than the timeout; never offline sooner."""
    # A clock read earlier than last_seen (another worker lagging) keeps it online.
    return last_seen is not None and now - last_seen < timeout_s


def offline_at(last_seen: float, timeout_s: float) -> float:
    """The first instant at which a location last seen at ``last_seen`` counts as offline."""
    return last_seen + timeout_s


def next_interval(base: float, rng: RandomSource, jitter: float = 0.2) -> float:
    """Seconds until the next heartbeat: base shortened by up to ``jitter`` (a fraction)."""
    if base <= 0 or not 0 <= jitter < 1:
        raise ValueError("base must be > 0 and jitter in [0, 1)")
    # Jitter only shortens the interval, so the gap never exceeds ``base`` and the
    # timeout budget (timeout > base + latency) holds; it still spreads 30k clients.
    return base * (1 - jitter * rng.random())


def backoff_delay(attempt: int, rng: RandomSource, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based): full-jitter exponential."""
    if attempt < 0 or base <= 0 or cap < base:
        raise ValueError("attempt must be >= 0, base > 0, cap >= base")
    # Full jitter spreads a reconnect storm after a server restart evenly over the
    # window (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
    ceiling = min(cap, base * float(2 ** min(attempt, 32)))
    return ceiling * rng.random()
