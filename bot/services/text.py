"""Plain-text rendering of incidents for the terminal (CLI and the console notifier)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from bot.domain.models import Incident
from bot.services.incidents import IncidentView

# Alert and user text is untrusted. Anything that can drive a terminal or fake a line: C0 and C1
# controls (escape sequences, carriage return, bell, newline), Unicode line and paragraph
# separators, bidi overrides and isolates, zero-width and other invisible format characters,
# tag characters, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                     "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f\ud800-\udfff]")
_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": " "}


def safe(text: str, limit: int = 300) -> str:
    """Untrusted text for a terminal, on one line: every character that could move the cursor,
    recolour, ring, reorder the line or start a new one is shown as an escape (`\\x1b`, `\\n`,
    `\\u202e`), so a label cannot forge one of Backout's own lines. Bounded length. The one
    sanitizer for the CLI, the console notifier and Markdown."""
    cleaned = _UNSAFE.sub(_escape, text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _SHOWN:
        return _SHOWN[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
        who = event.actor_id or event.actor.value
        lines.append(f"    {when(event.at)}  {event.kind:<24} {safe(who, 30):<14} {safe(event.text)}")
    return "\n".join(lines)
