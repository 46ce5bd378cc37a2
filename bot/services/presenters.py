"""Plain-dict shapes of domain objects for the HTTP API and `--json` output (one shape for both)."""

from __future__ import annotations

from typing import Any

from bot.domain.actions import Action
from bot.domain.models import Alert, Incident, TimelineEvent
from bot.domain.suspects import Ranking
from bot.services.incidents import IncidentView


def incident_dict(incident: Incident) -> dict[str, Any]:
    return {"ref": incident.ref, **incident.model_dump(mode="json")}


def alert_dict(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude={"incident_id"})


def event_dict(event: TimelineEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"incident_id"})


def ranking_dict(ranking: Ranking) -> dict[str, Any]:
    """The suspects answer as DESIGN.md section 5 gives it (best first)."""
    return {
        "status": ranking.status.value,
        "confident": ranking.confident,
        "reason": ranking.reason,
        "ranked_at": ranking.ranked_at.isoformat() if ranking.ranked_at else None,
        "suspects": [
            {"sha": s.sha, "repo": s.repo, "subject": s.subject, "author": s.author,
             "applied_at": s.applied_at.isoformat(), "applied_source": s.applied_source.value,
             "score": s.score, "reasons": list(s.reasons), "pr_number": s.pr_number,
             "warnings": list(s.warnings), "applied_by": s.applied_by, "failed": s.failed,
             "code": [c.model_dump(mode="json") for c in s.code], "code_note": s.code_note,
             "hydrated": s.hydrated}
            for s in ranking.suspects
        ],
    }


def action_dict(action: Action) -> dict[str, Any]:
    return action.model_dump(mode="json", exclude={"incident_id"})


def incident_view_dict(view: IncidentView) -> dict[str, Any]:
    return {
        **incident_dict(view.incident),
        "alerts": [alert_dict(alert) for alert in view.alerts],
        "suspects": ranking_dict(view.ranking),
        "actions": [action_dict(action) for action in view.actions],
        "timeline": [event_dict(event) for event in view.timeline],
    }
