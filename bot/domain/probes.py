"""Health probes and reminders, pure: time and values are passed in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bot.domain.durations import format_duration
from bot.domain.grouping import PLAYBOOK_LABEL
from bot.domain.models import AlertStatus, Incident, IncidentStatus, ReceivedAlert
from bot.domain.playbooks import Playbook, Probe, Reminders


class ProbeStatus(StrEnum):
    OK = "ok"
    PENDING = "pending"  # holds, but not yet for `for`
    FIRING = "firing"
    UNKNOWN = "unknown"  # could not be evaluated: neither healthy nor unhealthy


@dataclass(frozen=True)
class ProbeState:
    key: str
    status: ProbeStatus = ProbeStatus.OK
    since: datetime | None = None  # when it started to hold
    value: float | None = None
    error: str = ""


class ProbeChange(StrEnum):
    NONE = "none"
    STARTED = "started"  # became firing: open or join an incident
    STOPPED = "stopped"  # stopped firing: resolve its alert


def probe_key(playbook: Playbook, probe: Probe) -> str:
    return f"{playbook.name}/{probe.name}"


def step(state: ProbeState, probe: Probe, *, value: float | None, error: str = "",
         now: datetime) -> tuple[ProbeState, ProbeChange]:
    """The next state after one evaluation, like a Prometheus alerting rule with `for`.

    An evaluation that failed (`value` None) changes nothing about firing: a probe that cannot
    be evaluated is never taken for healthy (resolving the incident) nor unhealthy (opening one)."""
    if value is None:
        return replace(state, error=error or "no data", value=None,
                       status=state.status if state.status is ProbeStatus.FIRING else ProbeStatus.UNKNOWN), \
            ProbeChange.NONE
    if not probe.holds(value):
        stopped = state.status is ProbeStatus.FIRING
        return ProbeState(key=state.key, status=ProbeStatus.OK, value=value), \
            (ProbeChange.STOPPED if stopped else ProbeChange.NONE)
    since = state.since if state.status in (ProbeStatus.PENDING, ProbeStatus.FIRING) and state.since else now
    if state.status is ProbeStatus.FIRING:
        return replace(state, value=value, error=""), ProbeChange.NONE
    if now - since >= probe.for_:
        return ProbeState(key=state.key, status=ProbeStatus.FIRING, since=since, value=value), ProbeChange.STARTED
    return ProbeState(key=state.key, status=ProbeStatus.PENDING, since=since, value=value), ProbeChange.NONE


def probe_alert(playbook: Playbook, probe: Probe, state: ProbeState, *, status: AlertStatus,
                now: datetime) -> ReceivedAlert:
    """The alert a probe raises, identified like any alert: (fingerprint, starts_at)."""
    labels = {"alertname": probe.name, "service": playbook.service, "probe": probe.name,
              "severity": probe.severity or playbook.severity, PLAYBOOK_LABEL: playbook.name, **probe.labels}
    fingerprint = hashlib.sha256(probe_key(playbook, probe).encode()).hexdigest()[:16]
    value = "n/a" if state.value is None else f"{state.value:.4g}"
    return ReceivedAlert(
        fingerprint=fingerprint, starts_at=state.since or now,
        ends_at=now if status is AlertStatus.RESOLVED else None, status=status, labels=labels,
        annotations={"summary": f"{probe.name}: {value}, {probe.describe()} for {format_duration(probe.for_)}",
                     "query": probe.query},
        source="probe",
    )


def reminder_due(incident: Incident, policy: Reminders, *, sent: int, last: datetime | None,
                 now: datetime) -> bool:
    """An open, unacknowledged incident gets a reminder after `ack_within`, then every `every`,
    at most `max` times."""
    if incident.status is not IncidentStatus.OPEN or sent >= policy.max:
        return False
    if now - incident.opened_at < policy.ack_within:
        return False
    return last is None or now - last >= policy.every
