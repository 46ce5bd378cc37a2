"""Which incident an alert belongs to: its playbook, grouping key, service and title."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.models import ReceivedAlert
from bot.domain.playbooks import Playbook, find_playbook, playbook_named

UNKNOWN_SERVICE = "unknown"
PLAYBOOK_LABEL = "backout_playbook"  # set by Backout's own probes: the playbook they belong to


@dataclass(frozen=True, slots=True)
class Route:
    group_key: str
    service: str
    playbook: Playbook | None


def route_alert(alert: ReceivedAlert, *, playbooks: Sequence[Playbook], group_key: str) -> Route:
    """The playbook's grouping when one matches, else the Alertmanager group key."""
    named = alert.labels.get(PLAYBOOK_LABEL)
    playbook = playbook_named(playbooks, named)
    playbook = playbook or find_playbook(playbooks, alert.labels)
    if playbook is not None:
        return Route(playbook.group_key(alert.labels), playbook.service, playbook)
    service = alert.labels.get("service") or UNKNOWN_SERVICE
    return Route(f"alertmanager:{group_key}", service, None)


def incident_title(alert: ReceivedAlert, service: str) -> str:
    """`HighErrorRate on checkout: 5xx > 5% on checkout`, cut to a readable length."""
    name = alert.labels.get("alertname", "Alert")
    summary = alert.annotations.get("summary", "").strip()
    title = f"{name} on {service}" + (f": {summary}" if summary else "")
    return title if len(title) <= 200 else title[:199] + "…"
