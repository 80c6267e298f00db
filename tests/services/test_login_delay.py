"""The per-account login delay: doubling waits, capped, reset on success, shared by workers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from summitcast.errors import RateLimitedError
from summitcast.services import accounts
from tests.presence.conftest import REDIS_URL, redis_or_skip

pytestmark = pytest.mark.integration


def _refused_for(delay: accounts.AccountDelay, key: str, now: float) -> int | None:
    """Retry-After of a refused claim, or None when the claim went through."""
    try:
        delay.claim(key, now=now)
    except RateLimitedError as refused:
        return refused.retry_after
    return None


def test_account_wait_is_free_at_first_then_doubles_up_to_the_cap() -> None:
    waits = [accounts.account_wait_s(n, free=3, base_s=1.0, cap_s=60.0) for n in range(1, 11)]

    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert accounts.account_wait_s(5000, free=3, base_s=1.0, cap_s=60.0) == 60.0


def test_account_delay_holds_each_check_until_the_wait_is_over() -> None:
    delay = accounts.AccountDelay(base_s=1.0, cap_s=60.0, salt=b"s")
    now = 0.0
    for _ in range(3):  # a person's typos cost nothing
        assert _refused_for(delay, "login-account:org@example.org", now) is None
    refusals = []
    for wait in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0):
        refusals.append(_refused_for(delay, "login-account:org@example.org", now + 0.01))
        assert _refused_for(delay, "login-account:org@example.org", now + wait - 0.01) == 1
        now += wait
        assert _refused_for(delay, "login-account:org@example.org", now) is None

    assert refusals == [1, 2, 4, 8, 16, 32, 60, 60]
    # Another account is not held back, whoever tries it.
    assert _refused_for(delay, "login-account:other@example.org", now) is None


def test_account_delay_is_reset_by_a_right_password_and_keeps_no_raw_key() -> None:
    delay = accounts.AccountDelay(base_s=1.0, cap_s=60.0, salt=b"s")
    for n in range(3):
        delay.claim("login-account:org@example.org", now=float(n))
    delay.reset("login-account:org@example.org")

    assert _refused_for(delay, "login-account:org@example.org", 2.0) is None
    assert all("org@example.org" not in key for key in delay._state)


def test_account_delay_forgets_accounts_idle_for_its_forget_time() -> None:
    delay = accounts.AccountDelay(base_s=1.0, cap_s=60.0, salt=b"s", forget_s=900)
    for n in range(200):
        delay.claim(f"login-account:guess{n}@example.org", now=float(n))

    remembered_then = len(delay)
    delay.claim("login-account:org@example.org", now=1200.0)

    assert remembered_then == 200
    assert len(delay) == 1


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


def _shared(prefix: str, *, base_s: float, cap_s: float) -> accounts.Delay:
    return accounts.account_delay(
        name="login-account",
        base_s=base_s,
        cap_s=cap_s,
        salt=b"s",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )


@pytest.mark.redis
def test_redis_account_delay_is_shared_by_workers_and_keeps_only_hashed_keys(
    redis_prefix: str,
) -> None:
    one, two = (_shared(redis_prefix, base_s=30.0, cap_s=60.0) for _ in range(2))
    key = "login-account:org@example.org"
    one.claim(key)
    two.claim(key)
    one.claim(key)  # the third failure: 30 s before the next check, on every worker
    with pytest.raises(RateLimitedError) as refused:
        two.claim(key)
    one.claim("login-account:other@example.org")
    client = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in client.scan_iter(match=f"{redis_prefix}:*")]
    ttls = [client.pttl(k) for k in keys]
    client.close()

    assert 29 <= refused.value.retry_after <= 31
    assert len(keys) == 2
    assert all(k.startswith(f"{redis_prefix}:ratelimit:login-account:") for k in keys)
    assert not any("example.org" in k for k in keys)
    assert all(0 < ttl <= 15 * 60 * 1000 for ttl in ttls)


@pytest.mark.redis
def test_redis_account_delay_doubles_and_is_reset(redis_prefix: str) -> None:
    delay = _shared(redis_prefix, base_s=0.1, cap_s=0.3)
    key = "login-account:org@example.org"
    for _ in range(3):
        delay.claim(key)
    waited = []
    for _ in range(3):  # 0.1 s, 0.2 s, then the cap of 0.3 s
        started = time.monotonic()
        while True:
            try:
                delay.claim(key)
                break
            except RateLimitedError:
                time.sleep(0.01)
        waited.append(time.monotonic() - started)
    delay.reset(key)
    for _ in range(2):
        delay.claim(key)  # free again

    # Held at least as long as each wait (Redis's clock has ms steps); slack above for load.
    for took, wait in zip(waited, (0.1, 0.2, 0.3), strict=True):
        assert wait - 0.005 <= took < wait + 0.5


def test_redis_account_delay_falls_back_to_this_worker_while_redis_is_away() -> None:
    delay = accounts.account_delay(
        name="login-account",
        base_s=60.0,
        cap_s=60.0,
        salt=b"s",
        redis_url="redis://127.0.0.1:1/0",
    )
    for _ in range(3):
        delay.claim("login-account:org@example.org")

    with pytest.raises(RateLimitedError):
        delay.claim("login-account:org@example.org")
