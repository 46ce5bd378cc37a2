"""Durations written the Prometheus way (`90s`, `5m`, `6h`, `1h30m`), for config and playbooks."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: Any) -> timedelta:
    """Parse `1h30m`-style text (or seconds as a number) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 5m or 6h")
    text = value.strip()
    pos, total = 0, timedelta()
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        try:
            total += int(match.group(1)) * _UNITS[match.group(2)]
        except OverflowError:
            raise ValueError(f"{value!r:.40} is longer than any duration Backout can hold") from None
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 6h or 1h30m")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest `1h30m`-style text for a timedelta (whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def human_duration(seconds: float | None) -> str:
    """`1m1s`, `0.50s` or `-` for a duration in seconds."""
    if seconds is None:
        return "-"
    if abs(seconds) < 1:
        return f"{seconds:.2f}s"
    return ("-" if seconds < 0 else "") + format_duration(timedelta(seconds=abs(seconds)))
