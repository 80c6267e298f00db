"""Heartbeat token rules, the online rule and client timing."""

from __future__ import annotations

import random

import pytest

from summitcast.domain.presence import (
    Heartbeat,
    Refusal,
    ReplayState,
    backoff_delay,
    canonical_message,
    encode_heartbeat,
    is_online,
    is_replay,
    next_interval,
    offline_at,
    parse_heartbeat,
    sign_heartbeat,
    verify_heartbeat,
)

pytestmark = pytest.mark.unit

SECRET = b"location-secret-0123456789abcdef"
EPOCH = "k3v9X2mQpL0aZ8wR"
NOW = 1_752_750_000.0  # 17 July 2025, wall clock


def token(seq: int = 1, ts: int = int(NOW), secret: bytes = SECRET, epoch: str = EPOCH) -> str:
    return encode_heartbeat(sign_heartbeat(secret, "loc-42", epoch, seq, ts))


class FixedRandom:
    """A RandomSource that always returns the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_canonical_message_is_the_documented_layout() -> None:
    assert canonical_message("loc-42", EPOCH, 7, 1752750000) == (
        b"summitcast-heartbeat-v1\nloc-42\nk3v9X2mQpL0aZ8wR\n7\n1752750000"
    )


def test_sign_heartbeat_matches_known_vector() -> None:
    # Vector computed independently with: printf '%s' "$MSG" | openssl dgst -sha256 -hmac
    # (base64url without padding); keeps the JavaScript client honest too.
    hb = sign_heartbeat(b"secret", "loc-1", "abcdefgh", 0, 0)
    assert encode_heartbeat(hb) == f"hb1.loc-1.abcdefgh.0.0.{hb.sig}"
    assert hb.sig == "zWyxpTgNB_WixmgD9rpmJ6NEc-ugICct28YvCrKYLZw"


def test_parse_heartbeat_round_trips() -> None:
    hb = sign_heartbeat(SECRET, "loc-42", EPOCH, 12, 1752750000)
    assert parse_heartbeat(encode_heartbeat(hb)) == hb


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.1.1752750000",  # no signature
        "hb2.loc-42.k3v9X2mQpL0aZ8wR.1.1752750000." + "A" * 43,  # unknown version
        "hb1.loc 42.k3v9X2mQpL0aZ8wR.1.1752750000." + "A" * 43,  # space in id
        "hb1.loc-42.short.1.1752750000." + "A" * 43,  # epoch too short
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.-1.1752750000." + "A" * 43,  # negative seq
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.01.1752750000." + "A" * 43,  # leading zero
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.9007199254740992.1752750000." + "A" * 43,  # 2**53
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.1.1752750000." + "A" * 42,  # short signature
        "hb1.loc-42.k3v9X2mQpL0aZ8wR.1.1752750000." + "A" * 42 + "B",  # stray low bits
        "hb1." + "x" * 300,
    ],
)
def test_parse_heartbeat_malformed_is_none(bad: str) -> None:
    assert parse_heartbeat(bad) is None


def test_verify_heartbeat_valid_returns_state_to_store() -> None:
    verdict = verify_heartbeat(token(seq=3), SECRET, NOW, None, max_skew_s=120)
    assert verdict.ok
    assert verdict.refusal is None
    assert verdict.state == ReplayState(EPOCH, 3)
    assert verdict.heartbeat is not None
    assert verdict.heartbeat.location_id == "loc-42"


def test_verify_heartbeat_wrong_secret_is_refused() -> None:
    verdict = verify_heartbeat(token(), b"another-secret", NOW, None, max_skew_s=120)
    assert (verdict.ok, verdict.refusal, verdict.state) == (False, Refusal.BAD_SIGNATURE, None)


def test_verify_heartbeat_tampered_seq_is_refused() -> None:
    hb = sign_heartbeat(SECRET, "loc-42", EPOCH, 3, int(NOW))
    forged = Heartbeat(hb.location_id, hb.epoch, 4, hb.ts, hb.sig)
    assert verify_heartbeat(forged, SECRET, NOW, None, 120).refusal == Refusal.BAD_SIGNATURE


def test_verify_heartbeat_empty_secret_is_refused() -> None:
    assert verify_heartbeat(token(), b"", NOW, None, 120).refusal == Refusal.BAD_SIGNATURE


def test_verify_heartbeat_malformed_is_refused() -> None:
    verdict = verify_heartbeat("hb1.nope", SECRET, NOW, None, 120)
    assert (verdict.heartbeat, verdict.refusal) == (None, Refusal.MALFORMED)


def test_verify_heartbeat_skew_boundaries() -> None:
    def refusal(ts: int) -> Refusal | None:
        return verify_heartbeat(token(ts=ts), SECRET, NOW, None, max_skew_s=120).refusal

    assert refusal(int(NOW) - 120) is None
    assert refusal(int(NOW) - 121) == Refusal.STALE
    assert refusal(int(NOW) + 120) is None
    assert refusal(int(NOW) + 121) == Refusal.FUTURE


def test_verify_heartbeat_replay_same_or_lower_seq_is_refused() -> None:
    last = ReplayState(EPOCH, 5)
    assert verify_heartbeat(token(seq=5), SECRET, NOW, last, 120).refusal == Refusal.REPLAY
    assert verify_heartbeat(token(seq=4), SECRET, NOW, last, 120).refusal == Refusal.REPLAY
    assert verify_heartbeat(token(seq=6), SECRET, NOW, last, 120).ok


def test_verify_heartbeat_new_epoch_restarts_sequence() -> None:
    last = ReplayState("older-epoch-xyz", 900)
    verdict = verify_heartbeat(token(seq=0), SECRET, NOW, last, 120)
    assert verdict.state == ReplayState(EPOCH, 0)


def test_is_replay_rules() -> None:
    assert is_replay(None, EPOCH, 0) is False
    assert is_replay(ReplayState(EPOCH, 2), EPOCH, 2) is True
    assert is_replay(ReplayState(EPOCH, 2), EPOCH, 3) is False
    assert is_replay(ReplayState("other-epoch", 2), EPOCH, 1) is False


def test_sign_heartbeat_invalid_fields_raise() -> None:
    with pytest.raises(ValueError, match="epoch"):
        sign_heartbeat(SECRET, "loc-42", "short", 0, 0)
    with pytest.raises(ValueError, match="secret"):
        sign_heartbeat(b"", "loc-42", EPOCH, 0, 0)


def test_is_online_until_timeout_never_sooner() -> None:
    assert is_online(None, 100.0, 35.0) is False
    assert is_online(100.0, 100.0, 35.0) is True
    assert is_online(100.0, 134.999, 35.0) is True
    assert is_online(100.0, 135.0, 35.0) is False
    assert is_online(100.0, 90.0, 35.0) is True  # a reader whose clock lags
    assert offline_at(100.0, 35.0) == 135.0


def test_next_interval_only_shortens() -> None:
    assert next_interval(10.0, FixedRandom(0.0)) == 10.0
    assert next_interval(10.0, FixedRandom(0.5)) == 9.0
    values = [next_interval(10.0, random.Random(seed)) for seed in range(200)]
    assert min(values) >= 8.0
    assert max(values) <= 10.0


def test_next_interval_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_interval(10.0, FixedRandom(0.5), jitter=1.0)


def test_backoff_delay_grows_then_caps() -> None:
    top = FixedRandom(0.999999)
    ceilings = [round(backoff_delay(n, top), 3) for n in range(8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_delay(10_000, top) == pytest.approx(60.0, rel=1e-5)
    assert backoff_delay(3, FixedRandom(0.25)) == 2.0
    assert backoff_delay(3, FixedRandom(0.0)) == 0.0


def test_backoff_delay_negative_attempt_raises() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, FixedRandom(0.5))
