"""Watch locations' rules: statuses, registration fields, privacy placement, cell keys."""

from __future__ import annotations

import pytest

from summitcast.domain.locations import (
    STATUSES,
    LocationStatus,
    check_audience,
    check_bulk_approvable,
    check_kind,
    clean_text,
    initial_status,
    kept_city,
    kept_coordinate,
    parse_cell_key,
    resolve_privacy,
    stored_privacy,
)
from summitcast.domain.locations import cell_key as make_cell_key
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit


def test_location_status_values_are_the_stored_strings() -> None:
    assert [str(s) for s in STATUSES] == ["pending", "approved", "revoked"]
    assert LocationStatus.APPROVED == "approved"
    assert f"{LocationStatus.REVOKED}" == "revoked"


def test_initial_status_is_pending_unless_the_summit_auto_approves() -> None:
    assert (initial_status(False), initial_status(True)) == (
        LocationStatus.PENDING,
        LocationStatus.APPROVED,
    )


def test_clean_text_collapses_whitespace_and_names_the_field() -> None:
    assert clean_text("  Community \n hall ", "label", limit=200) == "Community hall"
    with pytest.raises(ValidationError) as caught:
        clean_text("   ", "label", limit=200, required=True)
    assert (caught.value.field, caught.value.message) == ("label", "Name of the place is required.")
    with pytest.raises(ValidationError) as too_long:
        clean_text("x" * 301, "contact", limit=300)
    assert too_long.value.message == "Contact for the organisers may have at most 300 characters."


@pytest.mark.parametrize(
    ("check", "value", "field"),
    [(check_kind, "castle", "kind"), (check_audience, 0, "expected_audience")],
)
def test_registration_checks_refuse_unknown_values(
    check: object, value: object, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check(value)  # type: ignore[operator]
    assert caught.value.field == field


def test_resolve_privacy_takes_the_choice_or_the_countrys_default() -> None:
    assert resolve_privacy("", "IR", {"IR"}) == "country"
    assert resolve_privacy("", "FR", {"IR"}) == "public"
    assert resolve_privacy("hidden", "FR", {"IR"}) == "hidden"
    with pytest.raises(ValidationError) as caught:
        resolve_privacy("secret", "FR", set())
    assert caught.value.field == "privacy_level"


def test_stored_privacy_reads_an_unknown_level_as_public() -> None:
    assert [stored_privacy(x) for x in ("public", "country", "hidden", "?")] == [
        "public",
        "country",
        "hidden",
        "public",
    ]


def test_only_a_public_location_keeps_its_city_and_fine_coordinates() -> None:
    assert (kept_city("public", "Paris"), kept_city("country", "Paris")) == ("Paris", "")
    assert (kept_coordinate("public", 48.8566), kept_coordinate("hidden", 48.8566)) == (
        48.86,
        49.0,
    )


def test_check_bulk_approvable_refuses_a_list_of_revoked_ones() -> None:
    check_bulk_approvable("")
    check_bulk_approvable("pending")
    with pytest.raises(ValidationError) as caught:
        check_bulk_approvable("revoked")
    assert (
        caught.value.message
        == "Only pending locations can be approved; this list shows revoked ones."
    )


def test_cell_key_round_trips_a_city_name_holding_a_bar() -> None:
    key = make_cell_key("FR", "Paris|Nord", 48.85, 2.35)

    assert key == "FR|48.85|2.35|Paris|Nord"
    assert parse_cell_key(key) == ("FR", 48.85, 2.35, "Paris|Nord")
    assert parse_cell_key("FR|x|2.35|Paris") is None
    assert parse_cell_key("FR") is None
