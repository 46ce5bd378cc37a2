"""The incident's chat card and its thread's suspects posts, decided once; chat adapters render them.

The card is what a responder reads at 3 a.m.: the state, who leads, the answer in one line (the
confident suspect with its best reason, the rollback plan's next step, or "no change explains
it"), its links and only the buttons the state allows. What explains the answer goes to the
thread: each `suspects.ranked` event becomes a post listing the suspects not listed before, with
their reasons and the verdict buttons, so a suspect and its reasons are posted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.actions import FINISHED, ActionKind, ActionState
from bot.domain.automerge import holdable
from bot.domain.chat import clip
from bot.domain.models import TimelineEvent
from bot.domain.plan import Plan, StepState
from bot.domain.playbooks import Playbook
from bot.domain.ports import IncidentMessage, Store
from bot.domain.rooms import LEAD
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.timeline import EventKind
from bot.services.incidents import IncidentView, get_summary
from bot.services.notify import code_lines
from bot.services.plan import incident_plan

MOST_LINKS = 3  # pull requests on the card; the rest are on the incident page
# An incident branch that exists or is on its way: the card no longer offers to open one.
_BRANCH_MADE = FINISHED | {ActionState.STARTED, ActionState.WAITING}
# What a step under way says on the card instead of its best reason.
_UNDER_WAY = {StepState.REVERTING: "rolling back", StepState.APPLIED: "rolled back, watching the key metric",
              StepState.VERIFIED: "rolled back: recovered"}


def incident_message(*, store: Store, incident_id: int, playbooks: Sequence[Playbook] = (),
                     now: datetime | None = None) -> IncidentMessage:
    """The incident's chat card as of `now` (default: its last timeline event), with its thread's
    suspects posts. Without its playbook, the plan uses the default suspect policy."""
    view = get_summary(store=store, incident_id=incident_id)
    when = now or (view.timeline[-1].at if view.timeline else view.incident.opened_at)
    plan = incident_plan(store=store, playbooks=playbooks, incident_id=incident_id, now=when, view=view)
    return IncidentMessage(playbook=view.incident.playbook, opened_at=view.incident.opened_at,
                           payload=card_payload(view, plan))


def card_payload(view: IncidentView, plan: Plan) -> dict[str, Any]:
    """The card's content (JSON-safe): what it says, its links and which buttons it offers."""
    incident = view.incident
    target = plan.current if plan.current is not None and plan.current.state is StepState.PROPOSED else None
    return {
        "ref": incident.ref,
        "title": f"{incident.ref} {incident.title}",
        "playbook": incident.playbook,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "service": incident.service,
        "lead": lead_of(view),
        "roles": dict(view.roles),  # role -> who holds it (`role` and the first acknowledgement), the lead first
        "firing": view.counts.firing,
        "answer": answer_line(view.ranking, plan),
        "links": [[a.request_name[:1].upper() + a.request_name[1:], a.url] for a in view.actions if a.url][:MOST_LINKS],
        # the plan's step to take now: no "Roll back" button while none is (or its revert is under way),
        # nor for an out-of-band change, which is synced from Git, never reverted
        "rollback": [target.sha, target.short] if target is not None and target.sync is None else None,
        "branch": not any(a.kind is ActionKind.INCIDENT_BRANCH and a.state in _BRANCH_MADE for a in view.actions),
        # during the veto window of an automatic merge (actions.merge: confident): the Hold button
        "hold": any(holdable(a) for a in view.actions),
        "branches": branch_states(view),
        "suspect_posts": suspect_posts(view),
    }


def branch_states(view: IncidentView) -> list[dict[str, Any]]:
    """The incident branch per repository, for the card to draw: its state (`draft`, `ready`,
    `merged`, `closed`, `pushed` without a pull request, `failed`), its pull request and how many
    commits people pushed to it."""
    states = []
    for a in view.actions:
        if a.kind is not ActionKind.INCIDENT_BRANCH:
            continue
        state = {ActionState.PR_OPEN: "ready" if a.detail.get("ready") else "draft", ActionState.MERGED: "merged",
                 ActionState.CLOSED: "closed", ActionState.PUSHED: "pushed"}.get(a.state, a.state.value)
        states.append({"repo": a.repo, "branch": a.branch, "state": state, "url": a.url,
                       "commits": len(a.detail.get("commits", []))})
    return states


def lead_of(view: IncidentView) -> str | None:
    """Who leads the incident: its `lead` role (handed over with `role lead @user`, else given to
    the first to acknowledge); before roles were recorded, the first to acknowledge; else None."""
    if LEAD in view.roles:
        return view.roles[LEAD]
    acknowledged = next((e for e in view.timeline
                         if e.kind == EventKind.INCIDENT_ACKNOWLEDGED.value and e.actor_id), None)
    return acknowledged.actor_id if acknowledged is not None else None


def answer_line(ranking: Ranking, plan: Plan) -> str:
    """The answer in one line: the confident suspect and its best reason (or how its rollback goes),
    the rollback plan's next step, or that no change explains it."""
    if ranking.status is RankingStatus.PENDING:
        return "Looking for the change that caused it…"
    step = plan.current
    if plan.confident and step is not None:
        suspect = next((s for s in ranking.suspects if s.sha == step.sha), None)
        named = f"Suspect {step.short} “{_clip(step.subject, 70)}”"
        if suspect is not None:
            named += f" by {_person(suspect.author)}" + (f" ({suspect.request})" if suspect.request else "")
        how = _UNDER_WAY.get(step.state) or (best_reason(suspect) if suspect is not None else "")
        return f"{named}: {how}" if how else named
    if plan.steps:
        line = plan.line()
        return line[:1].upper() + line[1:]
    listed = len(ranking.suspects)
    return "No change explains it" + (f" ({listed} listed in the thread, none convincing)" if listed else "")


def best_reason(suspect: Suspect) -> str:
    """The strongest evidence for a suspect: a failed reconciliation naming it, else its timing (the
    ranking lists its reasons in that order)."""
    return _clip(suspect.reasons[0], 120) if suspect.reasons else ""


def suspect_posts(view: IncidentView) -> dict[str, dict[str, Any]]:
    """For each `suspects.ranked` event (by id): the ranking's reason then and the suspects it
    listed that no earlier event had. Which suspects a post lists depends on the timeline alone, so
    a post sent long ago is computed the same way now; their reasons are the current ranking's."""
    ranking = view.ranking
    by_sha = {s.sha: s for s in ranking.suspects}
    shown: set[str] = set()
    posts: dict[str, dict[str, Any]] = {}
    for ranked in (e for e in view.timeline if e.kind == EventKind.SUSPECTS_RANKED.value and e.id is not None):
        listed = [item for item in ranked.data.get("suspects", []) if isinstance(item, dict) and item.get("sha")]
        new = [item for item in listed if str(item["sha"]) not in shown]
        shown.update(str(item["sha"]) for item in listed)
        posts[str(ranked.id)] = {"reason": _reason(ranked), "before": len(listed) - len(new), "suspects": [
            _suspect(ranking, by_sha[sha]) if (sha := str(item["sha"])) in by_sha else _gone(sha, item)
            for item in new]}
    return posts


def _reason(ranked: TimelineEvent) -> str:
    """The ranking's reason as the event kept it (events from before `reason` was kept: its text)."""
    kept = ranked.data.get("reason")
    return str(kept) if kept else ranked.text.partition(" Top: ")[0]


def _suspect(ranking: Ranking, suspect: Suspect) -> dict[str, Any]:
    best = ranking.best
    return {"sha": suspect.sha, "short": suspect.short, "subject": suspect.subject, "author": suspect.author,
            "request": suspect.request, "score": suspect.score, "reasons": list(suspect.reasons),
            "warnings": list(suspect.warnings), "code": code_lines(suspect),
            "excluded": ranking.excluded(suspect), "best": best is not None and best.sha == suspect.sha}


def _gone(sha: str, item: dict[str, Any]) -> dict[str, Any]:
    """A suspect the ranking listed then and no longer does: still one a responder can judge."""
    return {"sha": sha, "short": sha[:7], "subject": "(no longer among the suspects)", "author": "", "request": None,
            "score": float(item.get("score") or 0.0), "reasons": [], "warnings": [], "code": [], "excluded": None,
            "best": False}


def _person(author: str) -> str:
    """"Dev <d@example.com>" -> "Dev": the name is what a responder needs on the card."""
    return _clip(author.split(" <")[0].strip() or author, 40)


def _clip(text: str, most: int) -> str:
    """One line (an alert's or a commit's line breaks would break the card's), at most `most` characters."""
    return clip(" ".join(text.split()), most)

