"""Paging (PagerDuty): what Backout tells the pager, decided from the timeline, and what the pager
tells Backout. Pure: the services store and send; this says what and when.

Outbound, each timeline event of a kind in CHANGE_EVENTS becomes a change event (PagerDuty shows it
beside incidents as a recent change), and an incident Backout paged is acknowledged and resolved
with it (dedup key `backout:<id>`). A new kind of event (a restore, a freeze) flows once it is
added to the map."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.durations import Duration
from bot.domain.models import Actor, Incident, IncidentStatus, Severity, TimelineEvent
from bot.domain.timeline import EventKind

DEDUP_PREFIX = "backout:"
SOURCE = "backout"  # payload.source: the system that reports the change or the problem


class PagerDutyPolicy(BaseModel):
    """A playbook's `pagerduty` section: its PagerDuty service (incidents there open or follow one
    of its incidents), whose escalation policy is on call, and whether Backout pages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,20}$")
    escalation_policy_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,20}$")  # default: the service's
    page: bool = False  # trigger a PagerDuty incident when one is not acknowledged within page_after
    page_after: Duration = timedelta(minutes=5)


class PageKind(StrEnum):
    CHANGE = "change"  # /v2/change/enqueue
    TRIGGER = "trigger"  # /v2/enqueue with event_action
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Page:
    """One message to the pager, as stored in its outbox and sent."""

    kind: PageKind
    incident_id: int
    summary: str
    at: datetime
    severity: str = "critical"  # Events v2: critical, error, warning, info
    links: tuple[tuple[str, str], ...] = ()  # (href, text)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.incident_id)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "incident_id": self.incident_id, "summary": self.summary,
                "at": self.at.isoformat(), "severity": self.severity,
                "links": [list(link) for link in self.links], "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Page:
        return cls(kind=PageKind(data["kind"]), incident_id=int(data["incident_id"]), summary=data["summary"],
                   at=datetime.fromisoformat(data["at"]), severity=data.get("severity", "critical"),
                   links=tuple((str(h), str(t)) for h, t in data.get("links", [])),
                   details=dict(data.get("details", {})))


def dedup_key(incident_id: int) -> str:
    return f"{DEDUP_PREFIX}{incident_id}"


def incident_of_key(key: str | None) -> int | None:
    """The Backout incident a PagerDuty incident key names (`backout:7`), else None."""
    number = (key or "").removeprefix(DEDUP_PREFIX)
    return int(number) if key and key.startswith(DEDUP_PREFIX) and number.isdigit() else None


# Timeline kinds that are changes to production, as PagerDuty's "recent changes" shows them.
# Restores and freezes join here when their events exist.
CHANGE_EVENTS: dict[EventKind, str] = {
    EventKind.PR_OPENED: "opened",
    EventKind.PR_MERGED: "merged",
    EventKind.VERIFY_RECOVERED: "verified: recovered",
    EventKind.VERIFY_FAILED: "verified: not recovered",
}
CHANGE_ACTIONS = frozenset({"revert", "restore", "freeze", "unfreeze"})  # pull requests that change production
PAGED_KINDS = frozenset({EventKind.INCIDENT_PAGED, EventKind.INCIDENT_ACKNOWLEDGED, EventKind.INCIDENT_RESOLVED})
WATCHED_KINDS = frozenset({*CHANGE_EVENTS, *PAGED_KINDS})  # what the outbox follows on the timeline

_SEVERITY = {Severity.CRITICAL: "critical", Severity.ERROR: "error", Severity.WARNING: "warning",
             Severity.INFO: "info", Severity.NONE: "warning"}


def page_for(event: TimelineEvent, incident: Incident, *, paged: bool, link: str | None = None) -> Page | None:
    """What the pager is told of a timeline event, or None. `paged`: Backout triggered a PagerDuty
    incident for it, so acknowledgement and resolution follow; what PagerDuty itself did (actor
    pagerduty) is never sent back."""
    kind = EventKind(event.kind)
    links = ((link, f"{incident.ref} in Backout"),) if link else ()
    if kind in CHANGE_EVENTS:
        pull_request = kind in (EventKind.PR_OPENED, EventKind.PR_MERGED)
        if pull_request and event.data.get("action", "revert") not in CHANGE_ACTIONS:
            return None  # an incident branch or a post-mortem changes nothing in production
        url = event.data.get("url")
        links = ((str(url), "pull request"), *links) if url else links
        return Page(kind=PageKind.CHANGE, incident_id=incident.id or 0, at=event.at, links=links,
                    summary=_cut(f"{incident.ref} {incident.service}: {event.text}"),
                    details={"incident": incident.ref, "service": incident.service, "event": event.kind,
                             "what": CHANGE_EVENTS[kind]})
    if event.actor is Actor.PAGERDUTY:
        return None
    if kind is EventKind.INCIDENT_PAGED:
        return Page(kind=PageKind.TRIGGER, incident_id=incident.id or 0, at=event.at, links=links,
                    summary=_cut(f"{incident.ref} {incident.title}"), severity=_SEVERITY[incident.severity],
                    details={"incident": incident.ref, "service": incident.service, "status": incident.status.value,
                             "opened_at": incident.opened_at.isoformat()})
    if not paged:
        return None
    action = PageKind.ACKNOWLEDGE if kind is EventKind.INCIDENT_ACKNOWLEDGED else PageKind.RESOLVE
    return Page(kind=action, incident_id=incident.id or 0, at=event.at, summary=_cut(event.text))


def due_to_page(incident: Incident, policy: PagerDutyPolicy, *, now: datetime) -> bool:
    """Whether an incident should page now: its playbook asks, and it is still unacknowledged
    `page_after` after it opened."""
    return policy.page and incident.status is IncidentStatus.OPEN and now - incident.opened_at >= policy.page_after


class PagerIncidentKind(StrEnum):
    TRIGGERED = "incident.triggered"
    ACKNOWLEDGED = "incident.acknowledged"
    RESOLVED = "incident.resolved"


@dataclass(frozen=True)
class PagerIncidentEvent:
    """An incident event from PagerDuty's webhook (v3), parsed."""

    event_id: str
    kind: PagerIncidentKind
    incident_id: str  # PagerDuty's (PT4KHLK)
    number: int | None
    title: str
    service_id: str
    urgency: str  # high, low
    created_at: datetime
    occurred_at: datetime
    html_url: str = ""
    incident_key: str | None = None
    agent: str = ""  # who acted (a user's name), when one did

    @property
    def ref(self) -> str:
        return f"PagerDuty #{self.number}" if self.number is not None else f"PagerDuty {self.incident_id}"


@dataclass(frozen=True)
class OnCall:
    """Someone on call, as the pager knows them (for inviting them into the incident's channel)."""

    name: str
    email: str
    level: int = 1  # the escalation level: 1 is paged first


def _cut(text: str, limit: int = 1000) -> str:
    """Events v2 summaries stop at 1,024 characters."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
