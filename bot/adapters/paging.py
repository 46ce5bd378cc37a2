"""Reading a forge's list page by page, within a bound: GitHub and GitLab serve at most 100 entries
a page, and a list Backout polls must not cost unbounded calls against their rate limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

PAGE = 100  # entries a page, the most either forge serves
MAX_PAGES = 10  # a list read past 1,000 entries (open requests, a request's comments) is cut there


def pages(read: Callable[[int], Any], *, per_page: int = PAGE, most: int = MAX_PAGES) -> Iterator[list[Any]]:
    """Each page `read(n)` answers, from the first, until a short one (the last) or `most` pages."""
    for page in range(1, most + 1):
        found = read(page)
        entries = found if isinstance(found, list) else []
        yield entries
        if len(entries) < per_page:
            return
