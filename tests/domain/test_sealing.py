"""Sealed secrets open only with their key, for their owner, untampered."""

from __future__ import annotations

import pytest

from summitcast.domain.sealing import MAX_SECRET_CHARS, Sealer, sealed_length

pytestmark = pytest.mark.unit

KEY = b"an-app-key-" + b"k" * 32
SECRET = "Zq3" * 14 + "x"  # 43 characters, as a link secret


def test_sealed_secret_opens_for_its_owner() -> None:
    sealed = Sealer(KEY, "purpose").seal(SECRET, "location-1")

    assert Sealer(KEY, "purpose").open(sealed, "location-1") == SECRET
    assert SECRET not in sealed
    assert len(sealed) == sealed_length(len(SECRET))


def test_each_seal_differs() -> None:
    sealer = Sealer(KEY, "purpose")

    assert sealer.seal(SECRET, "location-1") != sealer.seal(SECRET, "location-1")


@pytest.mark.parametrize(
    ("key", "purpose", "owner"),
    [
        (b"another-key-" + b"k" * 32, "purpose", "location-1"),
        (KEY, "another-purpose", "location-1"),
        (KEY, "purpose", "location-2"),
    ],
)
def test_sealed_secret_opens_nowhere_else(key: bytes, purpose: str, owner: str) -> None:
    sealed = Sealer(KEY, "purpose").seal(SECRET, "location-1")

    assert Sealer(key, purpose).open(sealed, owner) is None


@pytest.mark.parametrize("damage", ["", "s1.", "s1.!!!", "s2.AAAA", "s1.AAAAAAAA", "x" * 90])
def test_malformed_or_tampered_values_open_to_nothing(damage: str) -> None:
    sealer = Sealer(KEY, "purpose")
    sealed = sealer.seal(SECRET, "location-1")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]

    assert sealer.open(damage, "location-1") is None
    assert sealer.open(flipped, "location-1") is None


def test_the_longest_secret_fits_the_column() -> None:
    # storage.tables: locations.sealed_secret is String(128).
    assert sealed_length(MAX_SECRET_CHARS) <= 128
    with pytest.raises(ValueError, match="1 to 64 ASCII characters"):
        Sealer(KEY, "purpose").seal("x" * (MAX_SECRET_CHARS + 1), "location-1")
