"""What people are told: the incident in sections and lines (the console, the CLI, chat replies) and
the notices that refresh it; the chat card is `bot.services.card`."""

from __future__ import annotations

from bot.domain.actions import Action, ActionState
from bot.domain.models import AlertStatus, Incident
from bot.domain.plan import make_plan, recorded
from bot.domain.ports import Notice, Notifier, Store
from bot.domain.suspects import Ranking, Suspect
from bot.services.incidents import IncidentView, get_summary

MAX_ALERTS = 5
MAX_SUSPECTS = 3


def incident_sections(view: IncidentView) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The incident as a person should see it, by section: state, alerts, suspects, actions."""
    incident = view.incident
    follows = f" · follows INC-{incident.follows}" if incident.follows else ""
    state = (f"{incident.status.value} · severity {incident.severity.value} · service {incident.service}{follows}",)
    firing = [a for a in view.alerts if a.status is AlertStatus.FIRING]
    alerts = []
    for alert in firing[:MAX_ALERTS]:
        summary = alert.annotations.get("summary", "")
        description = alert.annotations.get("description", "")[:200]
        instance = alert.labels.get("instance", "")
        alerts.append(f"• {alert.name}{f' ({instance})' if instance else ''}"
                      f"{f': {summary}' if summary else ''}{f' — {description}' if description else ''}")
    counts = view.counts  # a summary holds only the first alerts: the counts are of all of them
    if counts.firing > MAX_ALERTS:
        alerts.append(f"… and {counts.firing - MAX_ALERTS} more")
    ranking = view.ranking
    verdict = "" if ranking.status.value == "pending" else (" (confident)" if ranking.confident
                                                             else " (no confident suspect)")
    suspects = [ranking.reason, *plan_line(view)]
    for number, suspect in enumerate(ranking.suspects[:MAX_SUSPECTS], start=1):
        pr = f" ({suspect.request})" if suspect.request and suspect.request not in suspect.subject else ""
        suspects.append(f"{number}. {suspect.short} {suspect.subject[:100]}{pr} by {suspect.author} "
                        f"— score {suspect.score:.2f}{standing(ranking, suspect)}")
        suspects.extend(f"     - {reason}" for reason in suspect.reasons)
        suspects.extend(f"     ⚠ revert safety: {warning}" for warning in suspect.warnings)
        suspects.extend(f"     {line}" for line in code_lines(suspect))
    sections = [("", state), (f"Alerts: {counts.firing} firing of {counts.total}", tuple(alerts)),
                (f"Suspects{verdict}", tuple(suspects))]
    if view.actions:
        sections.append(("Actions", tuple(describe_action(action) for action in view.actions)))
    return tuple(sections)


def standing(ranking: Ranking, suspect: Suspect) -> str:
    """What a suspect's line adds: the best suspect (the default rollback target), or why it is none."""
    why = ranking.excluded(suspect)
    if why is not None:
        return f" (not a rollback target: {why})"
    best = ranking.best
    return ", best suspect" if best is not None and best.sha == suspect.sha else ""


def plan_line(view: IncidentView) -> tuple[str, ...]:
    """The proposed rollback plan in one line ("plan: roll back 1a2b3c4 first, then 5d6e7f8"), as the
    timeline and the actions tell it: a merged revert shows as rolling back until its step is judged."""
    if not view.timeline or recorded(view.timeline) is None:
        return ()
    plan = make_plan(ranking=view.ranking, playbook=None, timeline=view.timeline, actions=view.actions, reverted={},
                     now=view.timeline[-1].at)
    return () if plan.confident else (plan.line(),)


def incident_lines(view: IncidentView) -> tuple[str, ...]:
    """The sections flattened for a terminal."""
    lines: list[str] = []
    for heading, body in incident_sections(view):
        if heading:
            lines.append(f"{heading}:")
        lines.extend(f"  {line}" if heading else line for line in body)
    return tuple(lines)


def describe_action(action: Action) -> str:
    what = action.label
    state = {
        ActionState.PROPOSED: f"proposed (branch {action.branch} when made)",
        ActionState.STARTED: f"under way on {action.branch}",
        ActionState.PUSHED: f"pushed as {action.branch}",
        ActionState.CONFLICTED: "conflicted in " + ", ".join(action.detail.get("conflicts", [])),
        ActionState.WAITING: (f"prepared; the Git host does not answer ({action.detail.get('waiting', '')}): "
                              "pushed when it does"),
        ActionState.FAILED: f"failed: {action.detail.get('error', 'see the timeline')}; retry it",
        ActionState.PR_OPEN: f"{action.request_noun} open: {action.url}",
        ActionState.MERGED: f"merged: {action.url}",
        ActionState.CLOSED: f"{action.request_noun} closed without merging: {action.url}",
    }[action.state]
    if action.state is ActionState.PUSHED and action.url:
        state += f", {action.request_noun} {action.url}"
    if action.detail.get("warnings"):
        state += " — revert safety: " + "; ".join(action.detail["warnings"])
    if action.detail.get("pinned"):
        state += " — pinned against image automation: " + "; ".join(action.detail["pinned"])
    if action.detail.get("unpinned"):
        state += " — NOT pinned, do it before merging: " + "; ".join(action.detail["unpinned"])
    return f"{what} on {action.repo}: {state}"


def code_lines(suspect: Suspect, most: int = 5) -> list[str]:
    """The application commits behind a suspect's image bump: what the team fixes."""
    if not suspect.code and not suspect.code_note:
        return []
    lines = [f"code behind the image bump ({suspect.code_note})" if suspect.code_note else
             "code behind the image bump:"]
    for commit in suspect.code[:most]:
        pr = f" ({commit.request})" if commit.request and commit.request not in commit.subject else ""
        lines.append(f"  · {commit.short} {commit.subject[:100]}{pr} by {commit.author}, "
                     f"{commit.lines} line{'s' * (commit.lines != 1)}" + ("" if commit.effective else ", docs/CI only"))
    if len(suspect.code) > most:
        lines.append(f"  · … and {len(suspect.code) - most} more")
    return lines


def incident_update(*, store: Store, notifier: Notifier, incident_id: int, kind: str) -> None:
    """Tell people the incident's current state (opened, suspects changed, resolved)."""
    view = get_summary(store=store, incident_id=incident_id)
    notifier.notify(Notice(incident_id=incident_id, kind=kind, title=f"{view.incident.ref} {view.incident.title}",
                           lines=incident_lines(view)))


def action_update(*, notifier: Notifier, incident: Incident, action: Action, text: str) -> None:
    notifier.notify(Notice(incident_id=action.incident_id, kind=f"action.{action.state.value}",
                           title=f"{incident.ref} {describe_action(action)}", lines=(text,)))
