"""Accounts: Argon2 hashing, login, roles per summit, the login rate limit."""

from __future__ import annotations

import pytest

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
