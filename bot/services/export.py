"""The post-incident export: one versioned JSON document (docs/export.md) that the Markdown draft,
the HTML page and the chart are rendered from (`bot.adapters.export`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.models import format_incident_ref
from bot.domain.timeline import EventKind
from bot.domain.verdicts import Finding, finding
from bot.services.drift import suspect_drift
from bot.services.incidents import IncidentView

SCHEMA = "https://backout.dev/schemas/incident-export/v1"
SCHEMA_VERSION = 1


class ExportFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    PNG = "png"


def _none(*_: Any) -> str | None:
    return None


@dataclass(frozen=True)
class ExportLinks:
    """Where things live on the web, for the links of the export (None: no link, shown as text)."""

    commit: Callable[[str, str], str | None] = field(default=_none)  # (repo, sha)
    branch: Callable[[str, str], str | None] = field(default=_none)  # (repo, branch)
    page: Callable[[int], str | None] = field(default=_none)  # incident id
    request: Callable[[str, str], str | None] = field(default=_none)  # (repo, "#12" or "!12"): its page


def build_export(view: IncidentView, *, generated_at: datetime, links: ExportLinks | None = None) -> dict[str, Any]:
    """The export document (schema version 1, described in docs/export.md)."""
    links = links or ExportLinks()
    incident = view.incident
    first_ranked = next((e.at for e in view.timeline if e.kind == EventKind.SUSPECTS_RANKED), None)
    found = finding(view.verdicts)
    return {
        "$schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at.isoformat(),
        "incident": {
            "ref": incident.ref,
            "title": incident.title,
            "service": incident.service,
            "severity": incident.severity.value,
            "status": incident.status.value,
            "playbook": incident.playbook,
            "started_at": _iso(incident.started_at),
            "opened_at": _iso(incident.opened_at),
            "acknowledged_at": _iso(incident.acknowledged_at),
            "mitigating_at": _iso(incident.mitigating_at),
            "mitigated_at": _iso(incident.mitigated_at),
            "verified_at": _iso(incident.verified_at),
            "resolved_at": _iso(incident.resolved_at),
            "follows": format_incident_ref(incident.follows) if incident.follows else None,
            "roles": dict(view.roles),  # role -> who holds it, the lead first
            "page_url": links.page(incident.id or 0),
            "runbook_url": next((a.annotations["runbook_url"] for a in view.alerts
                                 if a.annotations.get("runbook_url")), None),
        },
        "durations_seconds": {
            "to_detect": _seconds(incident.started_at, incident.opened_at),
            "to_first_suspect": _seconds(incident.opened_at, first_ranked),
            "to_acknowledge": _seconds(incident.started_at, incident.acknowledged_at),
            "to_mitigate": _seconds(incident.started_at, incident.mitigated_at),  # the revert applied
            "to_verify": _seconds(incident.started_at, incident.verified_at),
            "to_resolve": _seconds(incident.started_at, incident.resolved_at),
        },
        "alerts": [
            {"name": a.name, "status": a.status.value, "fingerprint": a.fingerprint,
             "starts_at": _iso(a.starts_at), "ends_at": _iso(a.ends_at),
             "labels": a.labels, "annotations": a.annotations, "generator_url": a.generator_url or None}
            for a in view.alerts
        ],
        "suspects": {
            "status": view.ranking.status.value,
            "confident": view.ranking.confident,
            "reason": view.ranking.reason,
            "ranked_at": _iso(view.ranking.ranked_at),
            "onset_at": _iso(view.ranking.onset_at),
            "best": view.ranking.best.sha if view.ranking.best else None,  # the answer (never an excluded change)
            "items": [
                {"rank": rank, "repo": s.repo, "sha": s.sha, "subject": s.subject, "author": s.author,
                 "applied_at": _iso(s.applied_at), "applied_source": s.applied_source.value,
                 "score": s.score, "reasons": list(s.reasons), "pr_number": s.pr_number,
                 "pr_ref": s.request, "pr_url": links.request(s.repo, s.request) if s.request else None,
                 "warnings": list(s.warnings), "effective": s.effective, "reverted_by": s.reverted_by,
                 "applied_by": s.applied_by, "failed": s.failed,
                 "code": [c.model_dump(mode="json") for c in s.code], "code_note": s.code_note,
                 "hydrated": s.hydrated, "verdict": _verdict_on(s.sha, found),
                 "url": links.commit(s.repo, s.sha) if s.drift is None else None,
                 "excluded": view.ranking.excluded(s), "drift": suspect_drift(s)}
                for rank, s in enumerate(view.ranking.suspects, start=1)
            ],
        },
        "verdict": None if found is None else {
            "culprit": found.culprit, "no_change": found.no_change, "ruled_out": sorted(found.ruled_out)},
        "verdicts": [
            {"at": _iso(v.at), "verdict": v.kind.value, "repo": v.repo, "sha": v.sha, "actor": v.actor.value,
             "actor_id": v.actor_id, "on_behalf_of": v.on_behalf_of or None, "who": v.who}
            for v in view.verdicts
        ],
        "actions": [
            {"kind": a.kind.value, "repo": a.repo, "commit": a.commit_sha or None, "state": a.state.value,
             "branch": a.branch, "url": a.url, "url_is": a.request_noun if a.url else None,
             "auto": a.auto, "actor": a.who,
             "commit_url": links.commit(a.repo, a.commit_sha) if a.commit_sha else None,
             "branch_url": links.branch(a.repo, a.branch),
             "created_at": _iso(a.created_at), "updated_at": _iso(a.updated_at),
             "conflicts": a.detail.get("conflicts", []), "warnings": a.detail.get("warnings", []),
             "commits": a.detail.get("commits", [])}
            for a in view.actions
        ],
        "timeline": [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor.value, "actor_id": e.actor_id,
             "on_behalf_of": e.data.get("on_behalf_of"), "who": e.who, "text": e.text}
            for e in sorted(view.timeline, key=lambda e: e.at)  # stable: events of one instant keep their order
        ],
    }


def _verdict_on(sha: str, found: Finding | None) -> str | None:
    if found is None:
        return None
    if found.culprit == sha:
        return "culprit"
    return "not_culprit" if sha in found.ruled_out else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
