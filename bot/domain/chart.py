"""What an incident chart holds: the metric line and the events marked on its time axis."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Marker:
    at: datetime
    kind: str  # change | alert_firing | alert_resolved | action | recovery
    label: str


@dataclass(frozen=True)
class ChartData:
    title: str
    start: datetime
    end: datetime
    query: str | None = None
    series: list[tuple[datetime, float]] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    note: str = ""  # why there is no metric line, when there is none
