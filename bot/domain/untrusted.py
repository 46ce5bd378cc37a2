"""What untrusted input must be before anything stores it or computes with it: one rule for every
text field and every time a sender gives us, on every route. Pure.

`StoredText`: text every database holds: NUL (which PostgreSQL text cannot hold) shown as U+2400,
as the Alertmanager parser shows it; a lone surrogate (not text at all) refused. Nothing else is
changed: the places that print text escape what they must (`bot.domain.text`).

`Instant`: an aware UTC time between 1970 and 2999, so adding a window or a lookback to it, or
converting it, never overflows; a time without a zone is read as UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

NUL_SHOWN = "\u2400"  # SYMBOL FOR NULL
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
_SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH = re.compile("[0-9]{1,12}")  # ASCII digits only: `²` is a digit to str.isdigit() but not to int()


def storable(value: str) -> str:
    """The text as every database stores it; ValueError for a lone surrogate."""
    if _SURROGATE.search(value):
        raise ValueError("is not valid Unicode: it holds a lone surrogate (\\ud800-\\udfff)")
    return value.replace("\x00", NUL_SHOWN)


def bounded(value: datetime) -> datetime:
    """The time in UTC; ValueError outside 1970-2999 (or with no UTC equivalent at all)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        utc = aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(f"is out of range: expected a time between {EARLIEST.year} and {LATEST.year}")
    return utc


def epoch_seconds(text: str | None) -> int | None:
    """Seconds since the epoch written in ASCII digits (at most 12), else None: for timestamps in
    headers, links and cookies, which anyone can send."""
    return int(text) if text is not None and _EPOCH.fullmatch(text) else None


StoredText = Annotated[str, AfterValidator(storable)]
Instant = Annotated[datetime, AfterValidator(bounded)]
