"""Query strings of backstage lists: page, rows per page and sort read once, links written back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from summitcast.domain import paging

# Every list parameter is a plain string, checked by domain.paging with a message a person
# can act on; FastAPI only caps the length so a huge value never reaches the parsers.
ListText = Annotated[str, Query(max_length=paging.MAX_QUERY_TEXT)]
ListCode = Annotated[str, Query(max_length=40)]


@dataclass(frozen=True, slots=True)
class ListView:
    """Where a visitor is in a list: the page asked for, rows per page and the sort."""

    page: int
    size: int
    sort: str
    default_sort: str

    def query(self, **filters: str) -> str:
        """The list's query string without the page: filters, then sort and size if not default."""
        values = {name: value for name, value in filters.items() if value}
        if self.sort != self.default_sort:
            values["sort"] = self.sort
        if self.size != paging.DEFAULT_PAGE_SIZE:
            values["per"] = str(self.size)
        return urlencode(values)


def list_view(page: str, per: str, sort: str, sorts: Mapping[str, str]) -> ListView:
    """Page, size and sort from the query string (the first of ``sorts`` is the default)."""
    return ListView(
        page=paging.page_number(page),
        size=paging.page_size(per),
        sort=paging.choice(sort, sorts, "sort", "way to sort this list"),
        default_sort=next(iter(sorts)),
    )


def with_page(query: str, number: int) -> str:
    """``query`` with the page added (page 1 is left out: it is the default)."""
    if number <= 1:
        return query
    return f"{query}&page={number}" if query else f"page={number}"


def tidy_redirect(request: Request, query: str, page: int) -> Response | None:
    """A redirect to the list's tidy address when the query string is untidy, else None.

    A filter form sends every field, empty or default ones too, and the country code as
    typed: one redirect gives the list one address per view, short enough to bookmark
    and share, and the same one the page links use.
    """
    tidy = with_page(query, page)
    if request.url.query == tidy:
        return None
    return RedirectResponse(f"{request.url.path}?{tidy}" if tidy else request.url.path, 303)
