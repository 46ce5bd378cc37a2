"""Plain-dict shapes of domain objects for the HTTP API and `--json` output (one shape for both)."""

from __future__ import annotations

from typing import Any

from bot.domain.models import Alert, Incident, TimelineEvent
from bot.services.incidents import IncidentView


def incident_dict(incident: Incident) -> dict[str, Any]:
    return {"ref": incident.ref, **incident.model_dump(mode="json")}


def alert_dict(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude={"incident_id"})


def event_dict(event: TimelineEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"incident_id"})


def incident_view_dict(view: IncidentView) -> dict[str, Any]:
    return {
        **incident_dict(view.incident),
        "alerts": [alert_dict(alert) for alert in view.alerts],
        "timeline": [event_dict(event) for event in view.timeline],
    }
