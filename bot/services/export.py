"""The post-incident export: one versioned JSON document, and Markdown rendered from it."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.durations import human_duration
from bot.domain.text import safe
from bot.domain.timeline import EventKind
from bot.domain.verdicts import Finding, finding
from bot.services.incidents import IncidentView

SCHEMA = "https://backout.dev/schemas/incident-export/v1"
SCHEMA_VERSION = 1


class ExportFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


def build_export(view: IncidentView, *, generated_at: datetime) -> dict[str, Any]:
    """The export document (schema version 1, described in docs/export.md)."""
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
            "resolved_at": _iso(incident.resolved_at),
        },
        "durations_seconds": {
            "to_first_suspect": _seconds(incident.opened_at, first_ranked),
            "to_acknowledge": _seconds(incident.started_at, incident.acknowledged_at),
            "to_mitigate": _seconds(incident.started_at, incident.mitigating_at),
            "to_resolve": _seconds(incident.started_at, incident.resolved_at),
        },
        "alerts": [
            {"name": a.name, "status": a.status.value, "fingerprint": a.fingerprint,
             "starts_at": _iso(a.starts_at), "ends_at": _iso(a.ends_at),
             "labels": a.labels, "annotations": a.annotations}
            for a in view.alerts
        ],
        "suspects": {
            "status": view.ranking.status.value,
            "confident": view.ranking.confident,
            "reason": view.ranking.reason,
            "ranked_at": _iso(view.ranking.ranked_at),
            "onset_at": _iso(view.ranking.onset_at),
            "items": [
                {"rank": rank, "repo": s.repo, "sha": s.sha, "subject": s.subject, "author": s.author,
                 "applied_at": _iso(s.applied_at), "applied_source": s.applied_source.value,
                 "score": s.score, "reasons": list(s.reasons), "pr_number": s.pr_number,
                 "warnings": list(s.warnings), "effective": s.effective, "reverted_by": s.reverted_by,
                 "applied_by": s.applied_by, "failed": s.failed,
                 "code": [c.model_dump(mode="json") for c in s.code], "code_note": s.code_note,
                 "hydrated": s.hydrated, "verdict": _verdict_on(s.sha, found)}
                for rank, s in enumerate(view.ranking.suspects, start=1)
            ],
        },
        "verdict": None if found is None else {
            "culprit": found.culprit, "no_change": found.no_change, "ruled_out": sorted(found.ruled_out)},
        "verdicts": [
            {"at": _iso(v.at), "verdict": v.kind.value, "repo": v.repo, "sha": v.sha, "actor": v.actor.value,
             "actor_id": v.actor_id}
            for v in view.verdicts
        ],
        "actions": [
            {"kind": a.kind.value, "repo": a.repo, "commit": a.commit_sha or None, "state": a.state.value,
             "branch": a.branch, "url": a.url, "auto": a.auto, "actor": a.actor_id,
             "created_at": _iso(a.created_at), "updated_at": _iso(a.updated_at),
             "conflicts": a.detail.get("conflicts", []), "warnings": a.detail.get("warnings", [])}
            for a in view.actions
        ],
        "timeline": [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor.value, "actor_id": e.actor_id,
             "text": e.text}
            for e in view.timeline
        ],
    }


def _verdict_on(sha: str, found: Finding | None) -> str | None:
    if found is None:
        return None
    if found.culprit == sha:
        return "culprit"
    return "not_culprit" if sha in found.ruled_out else None


def render_markdown(doc: dict[str, Any]) -> str:
    """The export as Markdown for the review. Every value from outside is escaped: alert text
    can neither format the page, nor inject HTML, nor make a live link."""
    inc = doc["incident"]
    durations = doc["durations_seconds"]
    out = [
        f"# {inc['ref']}: {md(inc['title'])}",
        "",
        "| | |",
        "|---|---|",
        f"| Service | {md(inc['service'])} |",
        f"| Severity | {inc['severity']} |",
        f"| Status | {inc['status']} |",
        f"| Playbook | {md(inc['playbook'] or '(none)')} |",
        f"| Started | {inc['started_at']} |",
        f"| Resolved | {inc['resolved_at'] or '-'} |",
        "",
        "## Durations",
        "",
        "| | |",
        "|---|---|",
    ]
    for key, label in (("to_first_suspect", "Opened to first suspect"), ("to_acknowledge", "To acknowledge"),
                       ("to_mitigate", "To mitigate"), ("to_resolve", "To resolve")):
        value = durations[key]
        out.append(f"| {label} | {human_duration(value)} |")
    suspects = doc["suspects"]
    out += ["", "## Suspects", "", md(suspects["reason"]), ""]
    for item in suspects["items"]:
        pr = (f" (#{item['pr_number']})"
              if item["pr_number"] and f"#{item['pr_number']}" not in item["subject"] else "")
        out.append(f"{item['rank']}. `{item['sha'][:12]}` {md(item['subject'])}{pr} — "
                   f"{md(item['author'])}, score **{item['score']:.2f}**")
        out.extend(f"   - {md(reason)}" for reason in item["reasons"])
        out.extend(f"   - revert safety: {md(warning)}" for warning in item["warnings"])
        if item["code"] or item["code_note"]:
            out.append("   - code behind the image bump" + (f" ({md(item['code_note'])})" if item["code_note"] else ""))
            out.extend(f"     - `{c['sha'][:12]}` {md(c['subject'])} — {md(c['author'])}, {c['lines']} lines"
                       for c in item["code"][:20])
    verdict = doc.get("verdict")
    if verdict:
        culprit = verdict["culprit"]
        said = ("no change caused it" if verdict["no_change"] else
                f"the culprit is `{culprit[:12]}`" if culprit else "no culprit named yet")
        ruled = ", ".join(f"`{sha[:12]}`" for sha in verdict["ruled_out"])
        out += ["", f"Responders' verdict: {said}" + (f"; ruled out: {ruled}" if ruled else "") + "."]
    out += ["", "## Actions", ""]
    if not doc["actions"]:
        out.append("None.")
    for action in doc["actions"]:
        out.append(f"- {action['kind']} `{action['commit'] or ''}` on {md(action['repo'])}: "
                   f"**{action['state']}**, branch `{action['branch']}` ({md(action['actor'])})")
        if action["conflicts"]:
            out.append(f"  - conflicts: {', '.join(md(f) for f in action['conflicts'])}")
        out.extend(f"  - revert safety: {md(warning)}" for warning in action["warnings"])
        if action["url"]:
            out.append(f"  - pull request: {safe(action['url'])}")
    out += ["", "## Alerts", "", "| Alert | Status | Labels | Summary | Description |",
            "|---|---|---|---|---|"]
    for alert in doc["alerts"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        notes = alert["annotations"]
        out.append(f"| {md(alert['name'])} | {alert['status']} | {md(labels)} | "
                   f"{md(notes.get('summary', ''))} | {md(notes.get('description', ''))} |")
    out += ["", "## Timeline", "", "| Time (UTC) | Event | Who | What |", "|---|---|---|---|"]
    for entry in doc["timeline"]:
        out.append(f"| {entry['at'][:19].replace('T', ' ')} | {entry['kind']} | "
                   f"{md(entry['actor_id'] or entry['actor'])} | {md(entry['text'])} |")
    return "\n".join(out) + "\n"


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#+\-=]|\d+[.)])")


def md(text: str) -> str:
    """Untrusted text as literal Markdown: HTML-escaped; emphasis, code, link and table
    characters backslashed; a leading heading or list marker neutralised; line breaks
    flattened (it may sit in a table cell); URLs broken so they do not autolink."""
    text = safe(re.sub(r"\s*[\r\n]+\s*", " ", text), limit=100_000)  # nothing that drives a terminal
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _MD_BLOCK_START.sub(_neutralise_marker, text)
    return text.replace("://", ":\u200b//")


def _neutralise_marker(match: re.Match[str]) -> str:
    marker = match.group(2)
    if marker[0].isdigit():
        return match.group(1) + marker[:-1] + "\\" + marker[-1]  # 1. -> 1\.
    return match.group(1) + "\\" + marker


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
