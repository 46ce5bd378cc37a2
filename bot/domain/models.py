"""The domain's values: alerts, incidents and timeline events. Pure data, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.errors import InvalidInput


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"  # a revert's pull request is open
    MITIGATED = "mitigated"  # the revert is applied (by the controller, or merged plus the sync delay)
    VERIFIED = "verified"  # the key metric recovered after the revert was applied
    RESOLVED = "resolved"
    CLOSED = "closed"


# A new alert joins an incident in these states; mitigated and verified ones too, since an alert
# after the revert is applied is news about the same problem, not a new one.
ACTIVE_STATUSES = frozenset({
    IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING, IncidentStatus.MITIGATED,
    IncidentStatus.VERIFIED,
})


class Severity(StrEnum):
    """Ordered from least to most severe; unknown label values map to NONE."""

    NONE = "none"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def from_label(cls, value: str | None) -> Severity:
        aliases = {"page": cls.CRITICAL, "warn": cls.WARNING, "err": cls.ERROR}
        text = (value or "").strip().lower()
        try:
            return cls(text)
        except ValueError:
            return aliases.get(text, cls.NONE)


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}


class Actor(StrEnum):
    """Who did something: a kind; the person's id goes in the event's `actor_id`."""

    USER = "user"
    ALERTMANAGER = "alertmanager"
    SCHEDULER = "scheduler"
    BACKOUT = "backout"
    PROBE = "probe"  # one of Backout's own health probes; actor_id names it
    CONTROLLER = "controller"  # a GitOps controller (Flux, Argo CD); actor_id names the object
    PAGERDUTY = "pagerduty"  # PagerDuty, or a person acting there; actor_id names them


class ReceivedAlert(Frozen):
    """One alert as a delivery carried it, already parsed and mapped."""

    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str = ""
    source: str = "alertmanager"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed alert")


class AlertState(NamedTuple):
    """What ingestion needs of a stored alert to tell a repeat from news: three columns, not
    the labels and annotations (a re-sent group reads thousands)."""

    id: int | None
    incident_id: int | None
    status: AlertStatus


class AlertCounts(NamedTuple):
    """An incident's alerts counted, without reading them: what a card, a notice or a plan's check
    needs of a group of 20,000."""

    firing: int = 0
    resolved: int = 0
    cleared_at: datetime | None = None  # the latest end (or receipt, for one with no end) of any alert

    @property
    def total(self) -> int:
        return self.firing + self.resolved

    @classmethod
    def of(cls, alerts: Sequence[Alert]) -> AlertCounts:
        """Counted from alerts already read."""
        firing = sum(a.status is AlertStatus.FIRING for a in alerts)
        cleared = max((a.ends_at or a.received_at for a in alerts), default=None)
        return cls(firing, len(alerts) - firing, cleared)


class SetAside(Frozen):
    """An alert of a delivery that is not stored, and why: its start time (`startsAt`) is none an
    alert can have."""

    index: int  # its place in the delivery's `alerts`, as sent
    fingerprint: str
    name: str
    reason: str


class Delivery(Frozen):
    """One webhook notification: a group of alerts, and those of its alerts set aside."""

    group_key: str
    status: AlertStatus
    alerts: tuple[ReceivedAlert, ...]
    receiver: str = ""
    external_url: str = ""
    set_aside: tuple[SetAside, ...] = ()
    # A part of a delivery too big for one transaction: the whole delivery's digest, which its
    # parts (and the same delivery sent again) share; empty for a delivery written in one piece.
    part_of: str = ""


class Alert(ReceivedAlert):
    """An alert as Backout keeps it. Identity: (fingerprint, starts_at)."""

    id: int | None = None
    incident_id: int | None
    received_at: datetime


class Incident(Frozen):
    id: int | None = None
    group_key: str
    title: str
    service: str
    severity: Severity
    status: IncidentStatus
    playbook: str | None
    started_at: datetime
    opened_at: datetime
    acknowledged_at: datetime | None = None
    mitigating_at: datetime | None = None
    mitigated_at: datetime | None = None
    verified_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    follows: int | None = None  # the resolved incident of the same service this one came after

    @property
    def ref(self) -> str:
        return format_incident_ref(self.id or 0)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class TimelineEvent(Frozen):
    """One step in an incident's life. Nothing is deleted; corrections are new events."""

    id: int | None = None
    incident_id: int
    at: datetime
    kind: str
    actor: Actor
    actor_id: str = ""
    text: str
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def who(self) -> str:
        """Who did it, as people read it: `ci-bot on behalf of the-cto` when a caller acted for someone."""
        return acting(self.actor_id or self.actor.value, str(self.data.get("on_behalf_of") or ""))


def acting(actor_id: str, on_behalf_of: str = "") -> str:
    """The actor, and whom they said they acted for (their word: only the actor is authenticated)."""
    return f"{actor_id} on behalf of {on_behalf_of}" if on_behalf_of else actor_id


_REF = re.compile(r"^(?:inc-)?(\d{1,18})$", re.IGNORECASE)
MAX_INCIDENT_ID = 2**31 - 1  # ids are 32-bit integers in the database: a larger one is no id


def parse_incident_ref(text: str | int) -> int:
    """Accept `7`, `INC-7` or `inc-7` and return 7."""
    match = _REF.match(str(text).strip())
    if not match or not 0 < int(match.group(1)) <= MAX_INCIDENT_ID:
        raise InvalidInput(f"not an incident id: {str(text)[:40]!r} (expected 7 or INC-7)")
    return int(match.group(1))


def format_incident_ref(number: int) -> str:
    return f"INC-{number}"
