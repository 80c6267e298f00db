"""Second factors as pure rules: sealed secrets, TOTP steps and reuse, recovery codes."""

from __future__ import annotations

import pyotp
import pytest

from summitcast.domain import sealing
from summitcast.domain import second_factor as rules

pytestmark = pytest.mark.unit

KEY = sealing.sealing_key("a-secret-key-of-at-least-32-characters!!", "totp-secret")
NOW = 1_800_000_000.0  # a fixed instant: step 60,000,000


def test_sealed_secret_opens_with_its_key_and_context() -> None:
    sealed = sealing.seal(KEY, b"JBSWY3DPEHPK3PXP", context=b"totp:7")

    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert sealing.unseal(KEY, sealed, context=b"totp:7") == b"JBSWY3DPEHPK3PXP"


def test_sealed_secret_refuses_another_key_context_or_a_changed_byte() -> None:
    sealed = sealing.seal(KEY, b"JBSWY3DPEHPK3PXP", context=b"totp:7")
    other_key = sealing.sealing_key("another-secret-key-of-32-characters-or-more", "totp-secret")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])

    for key, blob, context in (
        (other_key, sealed, b"totp:7"),
        (KEY, sealed, b"totp:8"),
        (KEY, tampered, b"totp:7"),
        (KEY, b"short", b"totp:7"),
    ):
        with pytest.raises(sealing.SealError):
            sealing.unseal(key, blob, context=context)


def test_sealing_keys_differ_by_purpose() -> None:
    secret = "a-secret-key-of-at-least-32-characters!!"

    assert sealing.sealing_key(secret, "totp-secret") != sealing.sealing_key(secret, "other")
    assert len(KEY) == 32


def test_totp_accepts_one_step_either_side_and_no_further() -> None:
    secret = rules.new_totp_secret()
    totp = pyotp.TOTP(secret)
    step = int(NOW) // 30

    accepted = {
        offset: rules.totp_step(secret, totp.at(NOW + 30 * offset), now=NOW, after_step=0)
        for offset in (-2, -1, 0, 1, 2)
    }

    assert accepted == {-2: None, -1: step - 1, 0: step, 1: step + 1, 2: None}


def test_totp_refuses_a_code_of_a_step_already_used() -> None:
    secret = rules.new_totp_secret()
    code = pyotp.TOTP(secret).at(NOW)
    step = rules.totp_step(secret, code, now=NOW, after_step=0)
    assert step is not None

    assert rules.totp_step(secret, code, now=NOW, after_step=step) is None
    earlier = pyotp.TOTP(secret).at(NOW - 30)
    assert rules.totp_step(secret, earlier, now=NOW, after_step=step) is None


def test_totp_takes_spaces_and_refuses_what_is_not_six_digits() -> None:
    secret = rules.new_totp_secret()
    code = pyotp.TOTP(secret).at(NOW)

    assert rules.totp_step(secret, f"{code[:3]} {code[3:]}", now=NOW, after_step=0) is not None
    assert rules.totp_step(secret, "12345", now=NOW, after_step=0) is None
    assert rules.totp_step(secret, "abcdef", now=NOW, after_step=0) is None


def test_totp_uri_names_issuer_and_account() -> None:
    secret = rules.new_totp_secret()
    uri = rules.totp_uri(secret, account="org@example.org", issuer="summitcast")

    assert uri.startswith(f"otpauth://totp/summitcast:org%40example.org?secret={secret}")
    assert "issuer=summitcast" in uri


def test_recovery_codes_are_ten_distinct_and_readable() -> None:
    codes = rules.new_recovery_codes()

    assert len(set(codes)) == 10
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    assert not any(ch in "ilo01" for c in codes for ch in c.replace("-", ""))


def test_recovery_code_hash_is_salted_and_matches_as_typed() -> None:
    code = "abcde-fghjk"
    first, second = rules.hash_recovery_code(code), rules.hash_recovery_code(code)

    assert first != second  # a salt of its own each
    assert code not in first
    assert rules.recovery_code_matches(" ABCDE FGHJK ", first)
    assert rules.recovery_code_matches("abcdefghjk", second)
    assert not rules.recovery_code_matches("abcde-fghjm", first)
    assert not rules.recovery_code_matches(code, "not-hex$00")


def test_passkey_label_is_printable_collapsed_and_capped() -> None:
    assert rules.passkey_label("  Work\x00 laptop\n ") == "Work laptop"
    assert rules.passkey_label("\x00\t ") == "Passkey"
    assert rules.passkey_label("k" * 300) == "k" * 100
