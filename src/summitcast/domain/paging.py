"""Pages of long lists: reading page, size and sort from a query string, and what a page shows.

Backstage lists page by offset (``LIMIT size OFFSET (number - 1) * size``), not by
keyset: an organiser jumps to "page 7 of 60" and bookmarks it, which a keyset cursor
cannot name, and the deepest offset of a 30,000-row summit is still one index walk of
30,000 entries (milliseconds). A row registered while someone pages may shift the rows
by one; for a review list that is acceptable, for a log it is why the newest come first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from summitcast.errors import ValidationError

PAGE_SIZES = (50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE = 1_000_000
MAX_QUERY_TEXT = 200


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of ``total`` rows one page shows; ``number`` is 1-based and within range."""

    number: int
    size: int
    total: int

    @classmethod
    def of(cls, requested: int, size: int, total: int) -> Page:
        """The page asked for, moved back to the last page when the list became shorter."""
        pages = max(1, -(-total // size))
        return cls(min(max(requested, 1), pages), size, total)

    @property
    def pages(self) -> int:
        """How many pages there are (at least one, possibly empty)."""
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        """How many rows come before this page."""
        return (self.number - 1) * self.size

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row; 0 when there is none."""
        return self.offset + 1 if self.total > self.offset else 0

    @property
    def last(self) -> int:
        """The 1-based position of the page's last row; 0 when there is none."""
        return min(self.offset + self.size, self.total)

    @property
    def has_previous(self) -> bool:
        """True when a page comes before this one."""
        return self.number > 1

    @property
    def has_next(self) -> bool:
        """True when a page comes after this one."""
        return self.number < self.pages

    @property
    def label(self) -> str:
        """'showing 51–100 of 3,000', or 'none to show'."""
        if self.total == 0:
            return "none to show"
        return f"showing {self.first:,}–{self.last:,} of {self.total:,}"

    def links(self, around: int = 2) -> list[int | None]:
        """Page numbers to link: the first, the last and ``around`` either side; None is a gap."""
        wanted = {1, self.pages, *range(self.number - around, self.number + around + 1)}
        shown = sorted(n for n in wanted if 1 <= n <= self.pages)
        out: list[int | None] = []
        for n in shown:
            if out and n - (out[-1] or 0) > 1:
                out.append(None)
            out.append(n)
        return out


def page_number(text: str) -> int:
    """A page number from the query string ('' is the first page)."""
    value = text.strip()
    if not value:
        return 1
    if not value.isdecimal() or not 1 <= int(value) <= MAX_PAGE:
        raise ValidationError(
            f"Page must be a whole number from 1 to {MAX_PAGE:,}, not {text[:20]!r}.",
            field="page",
        )
    return int(value)


def page_size(text: str) -> int:
    """Rows per page from the query string: one of PAGE_SIZES ('' is the default)."""
    value = text.strip()
    if not value:
        return DEFAULT_PAGE_SIZE
    if not value.isdecimal() or int(value) not in PAGE_SIZES:
        sizes = ", ".join(str(n) for n in PAGE_SIZES)
        raise ValidationError(
            f"Rows per page must be one of {sizes}, not {text[:20]!r}.", field="per"
        )
    return int(value)


def choice(text: str, choices: Mapping[str, str], field: str, what: str) -> str:
    """One of ``choices`` (its keys) from the query string; '' is the first one."""
    value = text.strip()
    if not value:
        return next(iter(choices))
    if value not in choices:
        names = ", ".join(choices)
        raise ValidationError(f"{text[:40]!r} is not a {what}: choose one of {names}.", field=field)
    return value


def search_text(text: str) -> str:
    """Text to look for in a list, spaces folded; at most MAX_QUERY_TEXT characters."""
    # Control characters become spaces: nobody types them, and PostgreSQL refuses NUL.
    value = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(value) > MAX_QUERY_TEXT:
        raise ValidationError(
            f"Search text may have at most {MAX_QUERY_TEXT} characters.", field="q"
        )
    return value
