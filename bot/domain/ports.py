"""The ports: small interfaces the services call and the adapters implement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

from bot.domain.models import Alert, Incident, IncidentStatus, TimelineEvent

T = TypeVar("T")


class IncidentRepository(Protocol):
    def add(self, incident: Incident) -> Incident: ...
    def get(self, incident_id: int) -> Incident | None: ...
    def save(self, incident: Incident) -> None: ...
    def find_latest(self, group_key: str) -> Incident | None: ...
    def list(self, *, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]: ...


class AlertRepository(Protocol):
    def get(self, fingerprint: str, starts_at: datetime) -> Alert | None: ...
    def add(self, alert: Alert) -> Alert: ...
    def save(self, alert: Alert) -> None: ...
    def for_incident(self, incident_id: int) -> list[Alert]: ...


class TimelineRepository(Protocol):
    def append(self, event: TimelineEvent) -> TimelineEvent: ...
    def for_incident(self, incident_id: int) -> list[TimelineEvent]: ...


class Transaction(Protocol):
    """What one unit of work sees; all its writes commit together or not at all."""

    @property
    def incidents(self) -> IncidentRepository: ...
    @property
    def alerts(self) -> AlertRepository: ...
    @property
    def timeline(self) -> TimelineRepository: ...


class Store(Protocol):
    def run(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in one transaction and commit. A `WriteConflict` re-runs it a few times."""
        ...


Clock = Callable[[], datetime]
