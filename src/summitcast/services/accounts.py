"""Accounts: create users, log in, grant roles, and check a role on an object."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass

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


def get_user(db: DbSession, user_id: int) -> User:
    """Load a user by id."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFoundError("No such user.")
    return user


class RateLimiter:
    """Sliding-window limit per client key; keys are hashed so no address is kept in memory."""

    def __init__(self, *, limit: int, window_s: float, salt: bytes) -> None:
        self.limit = limit
        self.window_s = window_s
        self._salt = salt
        self._hits: dict[str, deque[float]] = {}

    def _key(self, raw: str) -> str:
        return hmac.new(self._salt, raw.encode(), hashlib.sha256).hexdigest()[:32]

    def hit(self, raw_key: str, *, now: float | None = None) -> None:
        """Count one attempt, refusing when the window is full."""
        moment = time.monotonic() if now is None else now
        key = self._key(raw_key)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= moment - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = int(hits[0] + self.window_s - moment) + 1
            raise RateLimitedError(
                f"Too many attempts; try again in {retry} seconds.", retry_after=retry
            )
        hits.append(moment)
        if len(self._hits) > 100_000:
            self._forget_idle(moment)

    def _forget_idle(self, moment: float) -> None:
        # Bound memory under a flood of distinct keys: drop keys with no recent hit.
        idle = [k for k, v in self._hits.items() if not v or v[-1] <= moment - self.window_s]
        for key in idle:
            del self._hits[key]
