"""Pages of long lists: slices, labels, page links and the query-string parsers."""

from __future__ import annotations

import pytest

from summitcast.domain import paging
from summitcast.domain.paging import Page
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit


def test_page_second_of_three_thousand_shows_rows_51_to_100() -> None:
    page = Page.of(2, 50, 3000)

    assert (page.number, page.offset, page.first, page.last, page.pages) == (2, 50, 51, 100, 60)
    assert page.label == "showing 51–100 of 3,000"
    assert (page.has_previous, page.has_next) == (True, True)


def test_page_past_the_end_is_the_last_page() -> None:
    page = Page.of(99, 50, 120)

    assert (page.number, page.first, page.last) == (3, 101, 120)
    assert page.has_next is False


def test_page_of_an_empty_list_is_one_empty_page() -> None:
    page = Page.of(5, 50, 0)

    assert (page.number, page.pages, page.first, page.last) == (1, 1, 0, 0)
    assert page.label == "none to show"
    assert (page.has_previous, page.has_next) == (False, False)


@pytest.mark.parametrize(
    ("number", "links"),
    [
        (1, [1, 2, 3, None, 60]),
        (7, [1, None, 5, 6, 7, 8, 9, None, 60]),
        (4, [1, 2, 3, 4, 5, 6, None, 60]),
        (60, [1, None, 58, 59, 60]),
    ],
)
def test_page_links_keep_first_last_and_neighbours(number: int, links: list[int | None]) -> None:
    assert Page.of(number, 50, 3000).links() == links


def test_page_links_of_a_single_page() -> None:
    assert Page.of(1, 50, 10).links() == [1]


@pytest.mark.parametrize(("text", "number"), [("", 1), (" 3 ", 3), ("1000000", 1_000_000)])
def test_page_number_reads_whole_numbers(text: str, number: int) -> None:
    assert paging.page_number(text) == number


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "1000001", "99999999999999999999"])
def test_page_number_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        paging.page_number(text)

    assert caught.value.field == "page"
    assert "Page must be a whole number" in caught.value.message


def test_page_size_is_one_of_the_offered_sizes() -> None:
    assert [paging.page_size(t) for t in ("", "50", "100", "200")] == [50, 50, 100, 200]
    with pytest.raises(ValidationError) as caught:
        paging.page_size("100000")
    assert caught.value.field == "per"


def test_choice_defaults_to_the_first_and_refuses_unknown_ones() -> None:
    sorts = {"newest": "newest first", "name": "name"}

    assert paging.choice("", sorts, "sort", "way to sort") == "newest"
    assert paging.choice("name", sorts, "sort", "way to sort") == "name"
    with pytest.raises(ValidationError) as caught:
        paging.choice("random", sorts, "sort", "way to sort")
    assert caught.value.message == "'random' is not a way to sort: choose one of newest, name."


def test_search_text_folds_spaces_and_caps_length() -> None:
    assert paging.search_text("  Town   hall ") == "Town hall"
    assert paging.search_text("Town\x00hall\t") == "Town hall"
    with pytest.raises(ValidationError):
        paging.search_text("x" * 201)
