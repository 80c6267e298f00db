"""Accounts: create users, log in, grant roles, and check a role on an object."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain.accounts import Permission, Role, allows, validate_password
from summitcast.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
)
from summitcast.storage.tables import Membership, Summit, User

log = logging.getLogger(__name__)
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown e-mail like that of a known one.
_DUMMY_HASH = _hasher.hash("summitcast-dummy-password")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a request: a user id and whether they are a platform admin."""

    user_id: int
    is_admin: bool


def normalise_email(email: str) -> str:
    """Lower-case and trim an e-mail address, refusing what cannot be one."""
    value = email.strip().lower()
    if "@" not in value or len(value) > 254 or value.startswith("@") or value.endswith("@"):
        raise ValidationError(f"{email!r} is not an e-mail address.", field="email")
    return value


def create_user(
    db: DbSession, *, email: str, password: str, display_name: str = "", is_admin: bool = False
) -> User:
    """Create a user with an Argon2 password hash."""
    address = normalise_email(email)
    validate_password(password)
    if db.scalar(select(User).where(User.email == address)) is not None:
        raise ConflictError(f"A user with e-mail {address} exists already.", field="email")
    user = User(
        email=address,
        display_name=display_name.strip() or address.split("@")[0],
        password_hash=_hasher.hash(password),
        is_admin=is_admin,
    )
    db.add(user)
    db.flush()
    return user


def authenticate(db: DbSession, *, email: str, password: str) -> User:
    """Return the user whose password matches, or refuse without saying which part was wrong."""
    try:
        address = normalise_email(email)
    except ValidationError:
        address = ""
    user = db.scalar(select(User).where(User.email == address)) if address else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationError("E-mail or password is wrong.") from None
    if user is None:
        raise AuthenticationError("E-mail or password is wrong.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def grant_role(db: DbSession, *, user: User, summit: Summit, role: Role) -> Membership:
    """Give a user a role in a summit (idempotent)."""
    found = db.scalar(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.summit_id == summit.id,
            Membership.role == role.value,
        )
    )
    if found is not None:
        return found
    membership = Membership(user_id=user.id, summit_id=summit.id, role=role.value)
    db.add(membership)
    db.flush()
    return membership


def roles_in(db: DbSession, *, user_id: int, summit_id: int) -> set[Role]:
    """The roles a user holds in one summit."""
    rows = db.scalars(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.summit_id == summit_id
        )
    )
    return {Role(r) for r in rows}


def require(db: DbSession, actor: Actor | None, summit: Summit, permission: Permission) -> None:
    """Refuse unless the actor may do this to this summit."""
    if actor is None:
        raise AuthenticationError("Log in to do this.")
    roles = roles_in(db, user_id=actor.user_id, summit_id=summit.id)
    if not allows(roles, permission, is_admin=actor.is_admin):
        raise PermissionDeniedError(
            f"Your role in {summit.title!r} does not allow this ({permission.value})."
        )


def may(db: DbSession, actor: Actor, summit: Summit, permission: Permission) -> bool:
    """Whether the actor may do this to this summit (pages grey out what they may not)."""
    roles = roles_in(db, user_id=actor.user_id, summit_id=summit.id)
    return allows(roles, permission, is_admin=actor.is_admin)


def can_create_summits(db: DbSession, actor: Actor | None) -> bool:
    """Admins and anyone who organises a summit may create another."""
    if actor is None:
        return False
    if actor.is_admin:
        return True
    organises = db.scalar(
        select(Membership.id).where(
            Membership.user_id == actor.user_id, Membership.role == Role.ORGANISER.value
        )
    )
    return organises is not None


def backstage_summits(db: DbSession, actor: Actor) -> list[Summit]:
    """Summits the actor may see backstage, by start date."""
    query = select(Summit).order_by(Summit.start_date, Summit.id)
    if not actor.is_admin:
        query = query.join(Membership, Membership.summit_id == Summit.id).where(
            Membership.user_id == actor.user_id,
            Membership.role.in_([Role.ORGANISER.value, Role.PRODUCER.value]),
        )
    return list(db.scalars(query).unique())


def find_user(db: DbSession, user_id: int) -> User | None:
    """A user by id, or None if there is none (any more)."""
    return db.get(User, user_id)


def get_user(db: DbSession, user_id: int) -> User:
    """Load a user by id."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFoundError("No such user.")
    return user


def password_mark(user: User) -> str:
    """The end of the user's password hash, kept in a session: a new password ends the others."""
    return user.password_hash[-16:]


def user_of_session(db: DbSession, user_id: object, mark: object) -> User | None:
    """The user a session names, or None if gone or their password changed since it began."""
    user = db.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or mark != password_mark(user):
        return None
    return user


def hashed_key(salt: bytes, raw: str) -> str:
    """The HMAC of a client key (an address, say): what rate limiters keep instead of it."""
    return hmac.new(salt, raw.encode(), hashlib.sha256).hexdigest()[:32]


def _refuse(retry_s: float) -> RateLimitedError:
    # Rounded up past the instant the oldest attempt leaves the window.
    retry = int(max(0.0, retry_s)) + 1
    return RateLimitedError(f"Too many attempts; try again in {retry} seconds.", retry_after=retry)


class Limiter(Protocol):
    """A per-client limit of attempts in a sliding window."""

    def hit(self, raw_key: str) -> None:
        """Count one attempt, raising RateLimitedError when the window is full."""
        ...


class RateLimiter:
    """Sliding-window limit per client key in this process; keys are hashed, idle ones forgotten."""

    def __init__(self, *, limit: int, window_s: float, salt: bytes) -> None:
        self.limit = limit
        self.window_s = window_s
        self._salt = salt
        self._hits: dict[str, deque[float]] = {}
        self._next_prune = 0.0

    def hit(self, raw_key: str, *, now: float | None = None) -> None:
        """Count one attempt, refusing when the window is full."""
        moment = time.monotonic() if now is None else now
        if moment >= self._next_prune:
            # Once a window, so a key idle for a whole window is gone by the next one
            # (memory follows the clients of the last hour, not of the whole event).
            self._forget_idle(moment)
            self._next_prune = moment + self.window_s
        key = hashed_key(self._salt, raw_key)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= moment - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            raise _refuse(hits[0] + self.window_s - moment)
        hits.append(moment)

    def __len__(self) -> int:
        """How many client keys are remembered."""
        return len(self._hits)

    def _forget_idle(self, moment: float) -> None:
        idle = [k for k, v in self._hits.items() if not v or v[-1] <= moment - self.window_s]
        for key in idle:
            del self._hits[key]


# KEYS[1]: one client's sorted set of attempts (ms); ARGV: limit, window (ms), a unique member.
# Returns -1 when the attempt is counted, else the milliseconds until one slot frees.
# The server's clock (TIME) is the one clock of every worker; PEXPIRE drops idle keys.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
"""


class RedisRateLimiter:
    """The same sliding window shared by every worker and node through Redis."""

    # Keys are <prefix>:ratelimit:<name>:<HMAC of the client key> and expire one window
    # after their last attempt. While Redis is unreachable the in-process twin limits
    # each worker on its own: weaker (N workers allow N times the limit), but
    # registration and login keep working.

    def __init__(
        self,
        client: Any,
        *,
        name: str,
        limit: int,
        window_s: float,
        salt: bytes,
        prefix: str = "summitcast",
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._client = client
        self._salt = salt
        self._key_prefix = f"{prefix}:ratelimit:{name}:"
        self._script = client.register_script(_SLIDING_WINDOW)
        self.fallback = RateLimiter(limit=limit, window_s=window_s, salt=salt)
        self._warned_at = -math.inf

    def key_of(self, raw_key: str) -> str:
        """The Redis key that counts one client's attempts."""
        return self._key_prefix + hashed_key(self._salt, raw_key)

    def hit(self, raw_key: str) -> None:
        """Count one attempt across all workers, refusing when the window is full."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            wait_ms = int(
                self._script(
                    keys=[self.key_of(raw_key)],
                    args=[self.limit, int(self.window_s * 1000), secrets.token_hex(8)],
                )
            )
        except (RedisConnectionError, RedisTimeoutError) as error:
            now = time.monotonic()
            if now - self._warned_at >= 60:  # one line a minute, not one per attempt
                self._warned_at = now
                log.warning("rate limits per worker while Redis is unavailable (%s)", error)
            self.fallback.hit(raw_key)
            return
        if wait_ms >= 0:
            raise _refuse(wait_ms / 1000)


def account_wait_s(attempts: int, *, free: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after an account's n-th failed attempt: none at first, then doubling."""
    if attempts < free:
        return 0.0
    # The exponent is capped: 2.0**n overflows past n=1023, and the cap is long reached.
    return min(cap_s, base_s * 2.0 ** min(attempts - free, 1023))


class Delay(Protocol):
    """A per-account wait between login checks that doubles with each unsuccessful one."""

    def claim(self, raw_key: str) -> None:
        """Let one check through (counted as failed until reset), or raise RateLimitedError."""
        ...

    def reset(self, raw_key: str) -> None:
        """Forget an account's unsuccessful attempts (its password was right)."""
        ...


class AccountDelay:
    """Per-account exponential delay in this process; keys are hashed, idle ones forgotten."""

    # Why a delay and not a lock: a lock after N failures would let anyone lock staff out
    # by typing their e-mail. A delay capped at cap_s lets the owner in within cap_s of
    # an attacker's last guess, and holds a guesser to about one guess per cap_s per
    # account whatever number of addresses they use. Each claim counts as a failure
    # at once (reset() undoes it), so parallel guesses cannot all slip in before the
    # first failure is recorded.

    def __init__(
        self,
        *,
        base_s: float,
        cap_s: float,
        salt: bytes,
        free: int = 3,
        forget_s: float = 15 * 60,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.free = free
        self.forget_s = max(forget_s, cap_s)
        self._salt = salt
        self._state: dict[str, tuple[int, float, float]] = {}  # key → (attempts, until, last)
        self._lock = threading.Lock()  # login runs in the thread pool
        self._next_prune = 0.0

    def claim(self, raw_key: str, *, now: float | None = None) -> None:
        """Let one check through, or refuse while the account's current wait lasts."""
        moment = time.monotonic() if now is None else now
        key = hashed_key(self._salt, raw_key)
        with self._lock:
            if moment >= self._next_prune:
                self._forget_idle(moment)
                self._next_prune = moment + self.forget_s
            attempts, until, _ = self._state.get(key, (0, -math.inf, moment))
            if moment < until:
                raise _refuse(until - moment)
            attempts += 1
            wait = account_wait_s(attempts, free=self.free, base_s=self.base_s, cap_s=self.cap_s)
            self._state[key] = (attempts, moment + wait, moment)

    def reset(self, raw_key: str) -> None:
        """Forget the account's attempts."""
        with self._lock:
            self._state.pop(hashed_key(self._salt, raw_key), None)

    def __len__(self) -> int:
        """How many accounts are remembered."""
        return len(self._state)

    def _forget_idle(self, moment: float) -> None:
        idle = [k for k, (_, _, last) in self._state.items() if last <= moment - self.forget_s]
        for key in idle:
            del self._state[key]


# KEYS[1]: one account's hash {n, until (ms)}; ARGV: free attempts, base and cap (ms),
# forget (ms). Returns the milliseconds left to wait, or -1 when the attempt is let through
# (and counted). The same rule as AccountDelay.claim, on the server's clock.
_ACCOUNT_DELAY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if now < until_ms then
  return until_ms - now
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local wait = 0
if n >= free then
  wait = math.min(cap, base * 2 ^ math.min(n - free, 1023))
end
redis.call('HSET', KEYS[1], 'until', math.floor(now + wait))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return -1
"""


class RedisAccountDelay:
    """The same per-account delay shared by every worker and node through Redis."""

    # Keys are <prefix>:ratelimit:<name>:<HMAC of the account key>, forgotten forget_s
    # after the last attempt. While Redis is unreachable each worker delays on its own.

    def __init__(
        self,
        client: Any,
        *,
        name: str,
        base_s: float,
        cap_s: float,
        salt: bytes,
        prefix: str = "summitcast",
        free: int = 3,
        forget_s: float = 15 * 60,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.free = free
        self.forget_s = max(forget_s, cap_s)
        self._client = client
        self._salt = salt
        self._key_prefix = f"{prefix}:ratelimit:{name}:"
        self._script = client.register_script(_ACCOUNT_DELAY)
        self.fallback = AccountDelay(
            base_s=base_s, cap_s=cap_s, salt=salt, free=free, forget_s=forget_s
        )
        self._warned_at = -math.inf

    def key_of(self, raw_key: str) -> str:
        """The Redis key that holds one account's attempts."""
        return self._key_prefix + hashed_key(self._salt, raw_key)

    def claim(self, raw_key: str) -> None:
        """Let one check through across all workers, or refuse while the wait lasts."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        args = [
            self.free,
            max(1, round(self.base_s * 1000)),
            max(1, round(self.cap_s * 1000)),
            round(self.forget_s * 1000),
        ]
        try:
            wait_ms = int(self._script(keys=[self.key_of(raw_key)], args=args))
        except (RedisConnectionError, RedisTimeoutError) as error:
            self._warn(error)
            self.fallback.claim(raw_key)
            return
        if wait_ms >= 0:
            raise _refuse(wait_ms / 1000)

    def reset(self, raw_key: str) -> None:
        """Forget the account's attempts on every worker."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        self.fallback.reset(raw_key)
        try:
            self._client.delete(self.key_of(raw_key))
        except (RedisConnectionError, RedisTimeoutError) as error:
            self._warn(error)

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60:  # one line a minute, not one per attempt
            self._warned_at = now
            log.warning("login delays per worker while Redis is unavailable (%s)", error)


def authenticate_delayed(db: DbSession, delay: Delay, *, email: str, password: str) -> User:
    """authenticate(), checked only when the account's delay allows; a right password resets it."""
    # Keyed on what was typed (normalised), known account or not: the answers for an
    # unknown e-mail stay the same as for a known one.
    key = "login-account:" + email.strip().lower()[:254]
    delay.claim(key)
    user = authenticate(db, email=email, password=password)
    delay.reset(key)
    return user


def account_delay(
    *,
    name: str,
    base_s: float,
    cap_s: float,
    salt: bytes,
    redis_url: str = "",
    redis_prefix: str = "summitcast",
) -> Delay:
    """The in-process per-account delay, or one shared through Redis when configured."""
    if not redis_url:
        return AccountDelay(base_s=base_s, cap_s=cap_s, salt=salt)
    return RedisAccountDelay(
        _redis_client(redis_url),
        name=name,
        base_s=base_s,
        cap_s=cap_s,
        salt=salt,
        prefix=redis_prefix,
    )


def rate_limiter(
    *,
    name: str,
    limit: int,
    window_s: float,
    salt: bytes,
    redis_url: str = "",
    redis_prefix: str = "summitcast",
) -> Limiter:
    """The in-process limiter (embedded default), or one shared through Redis when configured."""
    if not redis_url:
        return RateLimiter(limit=limit, window_s=window_s, salt=salt)
    return RedisRateLimiter(
        _redis_client(redis_url),
        name=name,
        limit=limit,
        window_s=window_s,
        salt=salt,
        prefix=redis_prefix,
    )


def _redis_client(redis_url: str) -> Any:
    """A Redis client for the shared limiters, with short timeouts."""
    # Imported here so the embedded default never loads the Redis client.
    import redis

    # Short timeouts: a Redis that does not answer must not hold a login for long.
    return redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
