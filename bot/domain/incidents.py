"""The incident state machine: which transitions are allowed and what each one stamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from bot.domain.durations import Duration
from bot.domain.errors import Conflict
from bot.domain.models import Incident, IncidentStatus
from bot.domain.timeline import EventKind

S = IncidentStatus

ALLOWED: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.OPEN: frozenset({S.ACKNOWLEDGED, S.MITIGATING, S.RESOLVED}),
    S.ACKNOWLEDGED: frozenset({S.MITIGATING, S.RESOLVED}),
    S.MITIGATING: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}

EVENT_FOR: dict[IncidentStatus, EventKind] = {
    S.OPEN: EventKind.INCIDENT_REOPENED,
    S.ACKNOWLEDGED: EventKind.INCIDENT_ACKNOWLEDGED,
    S.MITIGATING: EventKind.INCIDENT_MITIGATING,
    S.RESOLVED: EventKind.INCIDENT_RESOLVED,
    S.CLOSED: EventKind.INCIDENT_CLOSED,
}


def can_transition(current: IncidentStatus, target: IncidentStatus) -> bool:
    return target in ALLOWED[current]


def transition(incident: Incident, target: IncidentStatus, *, now: datetime) -> Incident:
    """Move an incident to `target`, stamping the time; raise Conflict if not allowed."""
    if not can_transition(incident.status, target):
        raise Conflict(f"{incident.ref} is {incident.status.value}; it cannot become {target.value}")
    stamps: dict[str, object] = {"status": target}
    if target is S.ACKNOWLEDGED:
        stamps["acknowledged_at"] = now
    elif target is S.MITIGATING:
        stamps["mitigating_at"] = now
        if incident.acknowledged_at is None:
            stamps["acknowledged_at"] = now
    elif target is S.RESOLVED:
        stamps["resolved_at"] = now
    elif target is S.CLOSED:
        stamps["closed_at"] = now
    elif target is S.OPEN:
        stamps["resolved_at"] = None
    return incident.model_copy(update=stamps)


class IncidentPolicy(BaseModel):
    """How alerts drive an incident's life: set in the config's `incidents` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto_resolve: bool = True
    clear_for: Duration = timedelta(0)  # resolve only once alerts and probes stayed clear this long
    reopen_within: Duration = timedelta(minutes=30)

    def may_reopen(self, incident: Incident, *, now: datetime) -> bool:
        """A resolved incident whose alert fires again within the window is reopened."""
        return (
            incident.status is S.RESOLVED
            and incident.resolved_at is not None
            and now - incident.resolved_at <= self.reopen_within
        )
