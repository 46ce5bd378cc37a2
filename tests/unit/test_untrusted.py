"""The one rule for untrusted input: text every database stores, times every computation survives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from bot.domain.untrusted import Instant, StoredText, epoch_seconds


class Body(BaseModel):
    text: StoredText = ""
    at: Instant | None = None


@pytest.mark.parametrize(("sent", "stored"), [
    ("plain", "plain"), ("nul\x00inside", "nul\u2400inside"), ("\x00", "\u2400"),
    ("line\nbreak\tand \x1b[31m", "line\nbreak\tand \x1b[31m"),  # printing escapes these, not storing
])
def test_text_is_stored_as_sent_but_nul_shown(sent: str, stored: str) -> None:
    """NUL becomes U+2400 (PostgreSQL text cannot hold it); nothing else is changed or lost."""
    assert Body(text=sent).text == stored


def test_a_lone_surrogate_is_refused_naming_why() -> None:
    """A lone surrogate is not text: refused, saying so."""
    with pytest.raises(ValidationError, match="lone surrogate"):
        Body(text="a \ud800 b")


@pytest.mark.parametrize("sent", [
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z", 253402300799000,  # 9999-12-31 in milliseconds, as pydantic reads it
])
def test_times_out_of_range_are_refused(sent: object) -> None:
    """Past 2999, before 1970, or with no UTC equivalent: a validation error, never an OverflowError."""
    with pytest.raises(ValidationError, match="out of range"):
        Body(at=sent)


def test_times_are_aware_utc() -> None:
    """A zone is converted to UTC; no zone is read as UTC; and a day's arithmetic never overflows."""
    east = Body(at=datetime(2026, 11, 21, 23, 0, tzinfo=timezone(timedelta(hours=1)))).at
    assert east == datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    assert east is not None
    assert east.tzinfo is UTC
    assert Body(at="2026-11-21T22:00:00").at == datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    latest = Body(at="2999-12-31T23:59:59Z").at
    assert latest is not None
    assert latest + timedelta(days=36_500) > latest


@pytest.mark.parametrize(("text", "seconds"), [
    ("1764000000", 1764000000), ("0", 0), ("²", None), ("١٢٣", None), ("-1", None), (" 1", None),
    ("1" * 13, None), ("9" * 5000, None), ("", None), (None, None), ("1\n", None),
])
def test_epoch_seconds_are_ascii_digits(text: str | None, seconds: int | None) -> None:
    """Timestamps anyone can send (headers, links, cookies): ASCII digits, twelve at most, or None."""
    assert epoch_seconds(text) == seconds
