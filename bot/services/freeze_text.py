"""What a freeze or unfreeze says: its commit message and its pull request, each naming what it
does to the cluster once merged."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.actions import Action
from bot.domain.freeze import Edit
from bot.domain.models import Incident
from bot.domain.text import md


def freeze_message(incident: Incident, edits: Sequence[Edit], notes: Sequence[str]) -> str:
    """The freeze commit: every edit, what was not done, and the incident trailer."""
    lines = [f"Freeze automation for {incident.ref}", "", "Once merged:"]
    lines += [f"- {edit.path}: {edit.what}" for edit in edits]
    if notes:
        lines += ["", "Not done:", *[f"- {note}" for note in notes]]
    return "\n".join([*lines, "", f"Backout-Incident: {incident.ref}", ""])


def freeze_body(incident: Incident, action: Action, *, noun: str, page_url: str | None) -> str:
    """The freeze pull request: what merging it does to the cluster, what it does not, until when."""
    edits = [Edit.of(e) for e in action.detail.get("edits", [])]
    lines = [f"Backout opened this {noun} for **{incident.ref}**: {md(incident.title)} (service "
             f"{md(incident.service)}). It pauses automation for this service's objects only, so that nothing "
             "changes them while the incident is worked."]
    if page_url:
        lines.append(f"Incident page: {page_url}")
    lines += ["", "### What merging it does to the cluster", ""]
    lines += [f"- `{md(edit.path)}`: {md(edit.what)}" for edit in edits]
    notes = action.detail.get("notes", [])
    if notes:
        lines += ["", "### Not done", "", *[f"- ⚠️ {md(str(note))}" for note in notes]]
    lines += ["", "### Until when", "",
              f"Each change carries a `# backout-freeze {incident.ref}` comment with who, when and its expiry "
              f"({action.detail.get('expires_at', 'see the comments')}). Once the fix is merged and verified, "
              f"Backout opens the unfreeze {noun} (`backout/{incident.ref}/unfreeze`), which takes out exactly "
              f"these lines, and reminds until it merges; `backout unfreeze {incident.ref}` opens it sooner.",
              "", "Backout never merges: review, and merge when you agree.",
              f"<!-- backout {incident.ref} freeze {action.repo} -->"]
    return "\n".join(lines)


def unfreeze_body(incident: Incident, action: Action, *, noun: str, page_url: str | None) -> str:
    """The unfreeze pull request: automation resumes once merged."""
    lines = [f"Backout opened this {noun} for **{incident.ref}**: it takes out exactly what "
             f"`backout/{incident.ref}/freeze` added to {md(action.repo)}, byte for byte.",
             "", "### What merging it does to the cluster", "",
             "Image automation and automated sync resume for the service as before the freeze: the next "
             "image tag the policies pick is written and applied."]
    if page_url:
        lines.insert(1, f"Incident page: {page_url}")
    missing = action.detail.get("missing", [])
    if missing:
        lines += ["", "### Not undone (changed since the freeze)", "", *[f"- ⚠️ {md(str(m))}" for m in missing]]
    lines += ["", "Backout never merges: review, and merge when you agree.",
              f"<!-- backout {incident.ref} unfreeze {action.repo} -->"]
    return "\n".join(lines)
