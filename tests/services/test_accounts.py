"""Accounts: Argon2 hashing, login, roles per summit, the login rate limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from summitcast.domain.accounts import Permission, Role
from summitcast.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
)
from summitcast.services import accounts
from summitcast.storage.database import Database
from tests.conftest import PASSWORD, grant, make_summit, make_user
from tests.presence.conftest import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.integration


def test_password_is_stored_as_argon2_hash(database: Database) -> None:
    user = make_user(database, "a@example.org")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_short_password_is_refused(database: Database) -> None:
    with pytest.raises(ValidationError, match="12 characters"), database.session() as db:
        accounts.create_user(db, email="b@example.org", password="short")


def test_duplicate_email_is_refused_case_insensitively(database: Database) -> None:
    make_user(database, "c@example.org")
    with pytest.raises(ConflictError), database.session() as db:
        accounts.create_user(db, email="C@Example.org ", password=PASSWORD)


def test_authenticate_refuses_wrong_password_and_unknown_user_alike(database: Database) -> None:
    make_user(database, "d@example.org")
    with database.session() as db:
        with pytest.raises(AuthenticationError) as wrong:
            accounts.authenticate(db, email="d@example.org", password="not the password!")
        with pytest.raises(AuthenticationError) as unknown:
            accounts.authenticate(db, email="nobody@example.org", password=PASSWORD)
        user = accounts.authenticate(db, email="D@example.org", password=PASSWORD)
    assert wrong.value.message == unknown.value.message
    assert user.email == "d@example.org"


def test_producer_of_one_summit_cannot_edit_another(database: Database) -> None:
    producer = make_user(database, "p@example.org")
    mine = make_summit(database, "mine")
    theirs = make_summit(database, "theirs")
    grant(database, producer, mine, Role.PRODUCER)
    actor = accounts.Actor(user_id=producer.id, is_admin=False)

    with database.session() as db:
        accounts.require(db, actor, db.merge(mine), Permission.RUN_BROADCAST)
        with pytest.raises(PermissionDeniedError):
            accounts.require(db, actor, db.merge(mine), Permission.EDIT_PROGRAMME)
        with pytest.raises(PermissionDeniedError):
            accounts.require(db, actor, db.merge(theirs), Permission.VIEW_BACKSTAGE)


def test_admin_may_do_everything(database: Database) -> None:
    admin = make_user(database, "admin@example.org", is_admin=True)
    summit = make_summit(database)
    with database.session() as db:
        accounts.require(
            db, accounts.Actor(admin.id, True), db.merge(summit), Permission.MANAGE_MEMBERS
        )


def test_rate_limiter_refuses_after_limit_and_recovers() -> None:
    limiter = accounts.RateLimiter(limit=3, window_s=60, salt=b"s")
    for second in range(3):
        limiter.hit("10.0.0.1", now=float(second))
    with pytest.raises(RateLimitedError) as raised:
        limiter.hit("10.0.0.1", now=10.0)
    limiter.hit("10.0.0.2", now=10.0)
    limiter.hit("10.0.0.1", now=61.0)
    assert raised.value.retry_after == 51


def test_rate_limiter_keeps_no_raw_key() -> None:
    limiter = accounts.RateLimiter(limit=3, window_s=60, salt=b"s")
    limiter.hit("203.0.113.9", now=0.0)
    assert all("203.0.113.9" not in key for key in limiter._hits)


def test_rate_limiter_forgets_keys_idle_for_a_window() -> None:
    limiter = accounts.RateLimiter(limit=3, window_s=60, salt=b"s")
    for n in range(500):
        limiter.hit(f"198.51.100.{n % 250}:{n}", now=float(n % 30))

    remembered_then = len(limiter)
    limiter.hit("198.51.100.1", now=121.0)  # one window later: the old keys are idle

    assert remembered_then == 500
    assert len(limiter) == 1


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, its keys removed afterwards."""
    redis_or_skip()
    prefix = f"summitcast-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    stale = list(client.scan_iter(match=f"{prefix}:*"))
    if stale:
        client.delete(*stale)
    client.close()


def _shared(prefix: str, *, window_s: float = 60.0) -> accounts.Limiter:
    return accounts.rate_limiter(
        name="registration",
        limit=3,
        window_s=window_s,
        salt=b"s",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )


@pytest.mark.redis
def test_redis_rate_limiter_is_shared_by_workers_and_keeps_only_hashed_expiring_keys(
    redis_prefix: str,
) -> None:
    one, two = _shared(redis_prefix), _shared(redis_prefix)  # two workers' limiters
    one.hit("203.0.113.9")
    two.hit("203.0.113.9")
    one.hit("203.0.113.9")
    with pytest.raises(RateLimitedError) as raised:
        two.hit("203.0.113.9")
    two.hit("203.0.113.10")  # another client is not held back
    client = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in client.scan_iter(match=f"{redis_prefix}:*")]
    ttls = [client.pttl(k) for k in keys]
    client.close()

    assert 59 <= raised.value.retry_after <= 61
    assert len(keys) == 2
    assert all(k.startswith(f"{redis_prefix}:ratelimit:registration:") for k in keys)
    assert not any("203.0.113" in k for k in keys)
    assert all(0 < ttl <= 60_000 for ttl in ttls)


@pytest.mark.redis
def test_redis_rate_limiter_key_expires_after_the_window(redis_prefix: str) -> None:
    limiter = _shared(redis_prefix, window_s=0.5)
    for _ in range(3):
        limiter.hit("203.0.113.9")
    with pytest.raises(RateLimitedError):
        limiter.hit("203.0.113.9")
    time.sleep(0.6)
    client = redis.Redis.from_url(REDIS_URL)
    left = list(client.scan_iter(match=f"{redis_prefix}:*"))
    client.close()

    assert left == []  # expired in Redis itself, not only ignored
    limiter.hit("203.0.113.9")


def test_redis_rate_limiter_falls_back_to_this_worker_while_redis_is_away() -> None:
    limiter = accounts.rate_limiter(
        name="login", limit=2, window_s=60, salt=b"s", redis_url="redis://127.0.0.1:1/0"
    )
    limiter.hit("203.0.113.9")
    limiter.hit("203.0.113.9")

    with pytest.raises(RateLimitedError):
        limiter.hit("203.0.113.9")
