"""Plain-text rendering of incidents for the terminal (CLI and the console notifier)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.models import Incident
from bot.domain.text import safe
from bot.services.incidents import IncidentView


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def render_incident_list(incidents: Sequence[Incident]) -> str:
    if not incidents:
        return "no incidents"
    lines = [f"{'ID':<8} {'STATUS':<13} {'SEVERITY':<9} {'SERVICE':<16} {'OPENED':<21} TITLE"]
    for incident in incidents:
        lines.append(
            f"{incident.ref:<8} {incident.status.value:<13} {incident.severity.value:<9} "
            f"{safe(incident.service, 16):<16} {when(incident.opened_at):<21} "
            f"{safe(incident.title, 80)}"
        )
    return "\n".join(lines)


def render_incident(view: IncidentView) -> str:
    incident = view.incident
    lines = [
        f"{incident.ref}  {safe(incident.title)}",
        f"  status {incident.status.value}, severity {incident.severity.value}, "
        f"service {safe(incident.service)}, playbook {incident.playbook or '(none)'}",
        f"  started {when(incident.started_at)}, opened {when(incident.opened_at)}, "
        f"resolved {when(incident.resolved_at)}",
        f"  alerts ({len(view.alerts)}):",
    ]
    for alert in view.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        lines.append(f"    [{alert.status.value}] {safe(alert.name, 80)} {{{safe(labels, 200)}}}")
    lines.append("  timeline:")
    for event in view.timeline:
        who = event.who
        lines.append(f"    {when(event.at)}  {event.kind:<24} {safe(who, 60):<14} {safe(event.text)}")
    return "\n".join(lines)
