"""The incident state machine: which transitions are allowed and what each one stamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from bot.domain.durations import Duration
from bot.domain.errors import Conflict
from bot.domain.models import ACTIVE_STATUSES, Incident, IncidentStatus
from bot.domain.timeline import EventKind

S = IncidentStatus

# The incident's life (docs/lifecycle.md). Mitigating, mitigated and verified follow what Backout
# sees of the revert (its pull request opened, applied, the key metric recovered); a person
# acknowledges, resolves and reopens.
ALLOWED: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.OPEN: frozenset({S.ACKNOWLEDGED, S.MITIGATING, S.MITIGATED, S.RESOLVED}),
    S.ACKNOWLEDGED: frozenset({S.MITIGATING, S.MITIGATED, S.RESOLVED}),
    # Back to acknowledged when the revert's pull request is closed without merging.
    S.MITIGATING: frozenset({S.ACKNOWLEDGED, S.MITIGATED, S.RESOLVED}),
    S.MITIGATED: frozenset({S.VERIFIED, S.RESOLVED}),
    S.VERIFIED: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}

# What a person may ask for, and from which states: the machine's own steps (mitigating back to
# acknowledged, say) are not theirs to take.
BY_PERSON: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.ACKNOWLEDGED: frozenset({S.OPEN}),
    S.RESOLVED: ACTIVE_STATUSES,
    S.OPEN: frozenset({S.RESOLVED}),  # reopen
    S.CLOSED: frozenset({S.RESOLVED}),
}

EVENT_FOR: dict[IncidentStatus, EventKind] = {
    S.OPEN: EventKind.INCIDENT_REOPENED,
    S.ACKNOWLEDGED: EventKind.INCIDENT_ACKNOWLEDGED,
    S.MITIGATING: EventKind.INCIDENT_MITIGATING,
    S.MITIGATED: EventKind.INCIDENT_MITIGATED,
    S.VERIFIED: EventKind.INCIDENT_VERIFIED,
    S.RESOLVED: EventKind.INCIDENT_RESOLVED,
    S.CLOSED: EventKind.INCIDENT_CLOSED,
}

# When each state was entered.
STAMP: dict[IncidentStatus, str] = {
    S.ACKNOWLEDGED: "acknowledged_at",
    S.MITIGATING: "mitigating_at",
    S.MITIGATED: "mitigated_at",
    S.VERIFIED: "verified_at",
    S.RESOLVED: "resolved_at",
    S.CLOSED: "closed_at",
}


def can_transition(current: IncidentStatus, target: IncidentStatus) -> bool:
    return target in ALLOWED[current]


def refuse(incident: Incident, what: str) -> None:
    """Raise Conflict, naming the state, unless the incident is active: a resolved or closed
    incident is a record, and acting on it (a rollback, a branch) needs a reopen first."""
    if incident.status in ACTIVE_STATUSES:
        return
    hint = f"; reopen it first (`backout reopen {incident.ref}`)" if incident.status is S.RESOLVED else ""
    raise Conflict(f"{incident.ref} is {incident.status.value}; it cannot {what}{hint}")


def person_transition(incident: Incident, target: IncidentStatus, *, now: datetime) -> Incident:
    """`transition` for what a person asks; Conflict, naming the state, when it is not theirs to ask."""
    if incident.status not in BY_PERSON.get(target, frozenset()):
        raise Conflict(f"{incident.ref} is {incident.status.value}; it cannot become {target.value}")
    return transition(incident, target, now=now)


def transition(incident: Incident, target: IncidentStatus, *, now: datetime) -> Incident:
    """Move an incident to `target`, stamping the time; raise Conflict if not allowed."""
    if not can_transition(incident.status, target):
        raise Conflict(f"{incident.ref} is {incident.status.value}; it cannot become {target.value}")
    stamps: dict[str, object] = {"status": target}
    if target in STAMP:
        stamps[STAMP[target]] = now
    if target in (S.MITIGATING, S.MITIGATED) and incident.acknowledged_at is None:
        stamps["acknowledged_at"] = now  # someone acted on it
    if target is S.MITIGATED and incident.mitigating_at is None:
        stamps["mitigating_at"] = now  # applied without a pull request Backout saw open
    if target is S.OPEN:
        stamps["resolved_at"] = None
    return incident.model_copy(update=stamps)


class IncidentPolicy(BaseModel):
    """How alerts drive an incident's life: set in the config's `incidents` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto_resolve: bool = True
    clear_for: Duration = timedelta(0)  # resolve only once alerts and probes stayed clear this long
    reopen_within: Duration = timedelta(minutes=30)

    def may_reopen(self, incident: Incident, *, now: datetime) -> bool:
        """A resolved incident whose alert group fires again within the window is reopened."""
        return (
            incident.status is S.RESOLVED
            and incident.resolved_at is not None
            and now - incident.resolved_at <= self.reopen_within
        )

    def follows(self, incident: Incident, *, now: datetime) -> bool:
        """A new incident opened within the window of this one's resolution says it follows it."""
        return not incident.active and incident.resolved_at is not None and (
            now - incident.resolved_at <= self.reopen_within)
