"""Pull requests for Backout's branches: what they say, opening them, following them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.domain.actions import AUTOMATION, FOLLOWED, Action, ActionKind, ActionState
from bot.domain.automerge import window_state
from bot.domain.changes import Change
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, AlertStatus
from bot.domain.ports import Forge, Notice, Notifier, Store, Transaction
from bot.domain.text import md
from bot.domain.timeline import EventKind, event
from bot.services import lifecycle, notify
from bot.services.incidents import IncidentView, get_summary

LABELS = ("backout", "incident", "revert")
MAX_ALERTS = 10


# True whatever the playbook says: the one exception (docs/automerge.md) is announced on the pull request.
MERGE_NOTE = ("Backout merges this by itself only where the service's playbook allows it (`actions.merge: confident`), "
              "and then only after announcing it here with time to hold it. Review, and merge when you agree.")


def revert_body(view: IncidentView, *, change: Change, warnings: Sequence[str], page_url: str | None,
                pinned: Sequence[str] = (), unpinned: Sequence[str] = (), noun: str = "pull request") -> str:
    """The revert PR's body: the incident, why this commit, revert safety, the alerts. `noun`:
    "merge request" on GitLab."""
    incident = view.incident
    suspect = next((s for s in view.ranking.suspects if s.sha == change.sha), None)
    lines = [
        f"Backout opened this {noun} for **{incident.ref}**: {md(incident.title)} "
        f"(severity {incident.severity.value}, service {md(incident.service)}).",
    ]
    if page_url:
        lines.append(f"Incident page: {page_url}")
    lines += ["", f"### Why {change.short}", "", f"{md(change.subject)} by {md(change.author)}."]
    if suspect is not None:
        verdict = "confident" if view.ranking.confident else "not confident"
        lines.append(f"Suspect score **{suspect.score:.2f}** ({verdict}):")
        lines += [f"- {md(reason)}" for reason in suspect.reasons]
    else:
        lines.append("Chosen by hand: it is not among the ranked suspects.")
    lines += ["", "### Revert safety", ""]
    lines += [f"- ⚠️ {md(w)}" for w in warnings] or ["No revert-safety warnings."]
    if pinned or unpinned:
        lines += ["", "### Pinned against image automation", "",
                  "A plain revert would be undone by image automation at its next run. This revert also:"]
        lines += [f"- {md(p)}" for p in pinned]
        lines += [f"- ⚠️ not pinned: {md(u)}" for u in unpinned]
    firing = [a for a in view.alerts if a.status is AlertStatus.FIRING] or view.alerts
    lines += ["", f"### Alerts ({view.counts.total})", ""]
    for alert in firing[:MAX_ALERTS]:
        instance = alert.labels.get("instance")
        summary = alert.annotations.get("summary", "")
        lines.append(f"- {md(alert.name)}{f' ({md(instance)})' if instance else ''}"
                     f"{f': {md(summary)}' if summary else ''} [{alert.status.value}]")
    listed = view.counts.firing or view.counts.total  # of all the alerts, not only a summary's first
    if listed > MAX_ALERTS:
        lines.append(f"- … and {listed - MAX_ALERTS} more")
    lines += ["", MERGE_NOTE, f"<!-- backout {incident.ref} revert {change.sha} -->"]
    return "\n".join(lines)


def branch_body(view: IncidentView, *, change: Change, conflicts: Sequence[str], page_url: str | None,
                noun: str = "pull request") -> str:
    """The incident branch's draft PR: why the revert could not be made."""
    lines = [
        f"Backout could not revert {change.short} ({md(change.subject)}) for **{view.incident.ref}**: "
        "it conflicts with later changes in these files:",
        "",
        *[f"- `{md(path)}`" for path in conflicts],
        "",
        f"This draft {noun} is the incident branch, cut from the watched branch: push the "
        "manual fix here.",
    ]
    if page_url:
        lines.insert(1, f"Incident page: {page_url}")
    return "\n".join(lines)


def open_for_action(*, store: Store, forge: Forge, notifier: Notifier, action: Action, base: str,
                    title: str, body: str, draft: bool, reviewers: Sequence[str], now: datetime,
                    announce_failure: bool = True, labels: Sequence[str] = LABELS) -> Action:
    """Open (or adopt) the PR for an action's branch and record it; failures are recorded too
    (on the timeline unless `announce_failure` is off: a caller that retries says it once)."""
    try:
        ref = forge.open_pull_request(action.repo, head=action.branch, base=base, title=title, body=body,
                                      draft=draft, labels=labels, reviewers=reviewers)
    except BackoutError as exc:
        reason = str(exc)
        failed = action.model_copy(update={"updated_at": now,
                                           "detail": {**action.detail, "pr_error": reason}})

        def record_failure(tx: Transaction) -> None:
            tx.actions.save(failed)
            if not announce_failure:
                return
            tx.timeline.append(event(
                incident_id=action.incident_id, at=now, kind=EventKind.ACTION_FAILED, actor=Actor.BACKOUT,
                text=(f"Branch {action.branch} is pushed but its {forge.request_noun(action.repo)} could not be "
                      "opened: "
                      f"{reason}. Run the rollback again to retry."),
                data={"branch": action.branch, "error": reason}))

        store.run(record_failure)
        raise
    opened = action.model_copy(update={
        "state": ActionState.PR_OPEN if action.kind in FOLLOWED else action.state,
        "url": ref.url, "updated_at": now,
        "detail": {**action.detail, "pr_number": ref.number, "pr_name": ref.called, "pr_error": None}})
    how = "adopted (it already existed)" if ref.adopted else "opened"

    def record(tx: Transaction) -> Action:
        tx.actions.save(opened)
        tx.timeline.append(event(
            incident_id=action.incident_id, at=now, kind=EventKind.PR_OPENED, actor=Actor.BACKOUT,
            text=f"{'Draft ' if draft else ''}{ref.called if draft else ref.called.capitalize()} {how} for "
                 f"{action.branch}: {ref.url}",
            data={"number": ref.number, "url": ref.url, "adopted": ref.adopted, "draft": draft,
                  "action": action.kind.value}))
        if opened.kind not in AUTOMATION:
            lifecycle.request_opened(tx, opened, now=now)
        return opened

    result = store.run(record)
    incident = get_summary(store=store, incident_id=action.incident_id).incident
    notify.action_update(notifier=notifier, incident=incident, action=result,
                         text=f"{ref.called.capitalize()} {how}: {ref.url}")
    return result


def follow_pull_requests(*, store: Store, forge: Forge, notifier: Notifier, now: datetime) -> int:
    """Poll open Backout PRs: merged and closed ones move the incident's life (bot/services/lifecycle.py);
    failing checks are recorded. Returns how many PRs changed."""
    open_actions = store.run(lambda tx: tx.actions.with_state(ActionState.PR_OPEN))
    changed = 0
    for action in open_actions:
        number = action.detail.get("pr_number")
        if not isinstance(number, int) or not forge.handles(action.repo) or window_state(action) == "merging":
            continue  # a merge Backout is making is recorded by bot/services/automerge.py, with its rule
        called = action.request_name
        try:
            status = forge.pull_request_status(action.repo, number)
        except BackoutError as exc:
            notify_text = f"could not read {called}: {exc}"
            notifier.notify(Notice(incident_id=action.incident_id, kind="pr.unknown",
                                          title=f"INC-{action.incident_id} {called}",
                                          lines=(notify_text,)))
            continue
        if status.state == "merged":
            record_merge(store, action, called=called, by=status.merged_by or "someone", now=now)
        elif status.state == "closed":
            record_closed(store, action, called=called, now=now)
        elif status.checks != action.detail.get("checks") and status.checks in ("failure", "success"):
            updated = action.model_copy(update={"detail": {**action.detail, "checks": status.checks},
                                                "updated_at": now})
            verb = "are failing" if status.checks == "failure" else "pass"
            _record(store, updated, EventKind.PR_CHECKS, f"Checks on {called} {verb}", now)
        else:
            continue
        changed += 1
        incident = get_summary(store=store, incident_id=action.incident_id).incident
        notify.incident_update(store=store, notifier=notifier, incident_id=incident.id or 0,
                               kind=f"pr.{status.state}")
    return changed


def _record(store: Store, action: Action, kind: EventKind, text: str, now: datetime,
            then: Callable[..., None] | None = None) -> None:
    def work(tx: Transaction) -> None:
        tx.actions.save(action)
        tx.timeline.append(event(incident_id=action.incident_id, at=now, kind=kind, actor=Actor.BACKOUT,
                                 text=text, data={"branch": action.branch, "url": action.url}))
        if then is not None:
            then(tx, action, now=now)

    store.run(work)


def record_closed(store: Store, action: Action, *, called: str, now: datetime) -> None:
    """A Backout pull request closed without merging (polled, or a forge webhook)."""
    _record(store, action.model_copy(update={"state": ActionState.CLOSED, "updated_at": now}),
            EventKind.PR_CLOSED, f"{called.capitalize()} was closed without merging", now,
            then=None if action.kind in AUTOMATION else lifecycle.request_closed)


def record_merge(store: Store, action: Action, *, called: str, by: str, now: datetime) -> None:
    """A Backout pull request merged (polled, or a forge webhook): the incident is mitigating until
    what it merged is applied."""
    what = "Incident branch" if action.kind is ActionKind.INCIDENT_BRANCH else action.kind.value.capitalize()

    def work(tx: Transaction) -> None:
        tx.actions.save(action.model_copy(update={"state": ActionState.MERGED, "updated_at": now}))
        tx.timeline.append(event(incident_id=action.incident_id, at=now, kind=EventKind.PR_MERGED,
                                 actor=Actor.USER, actor_id=by,
                                 text=f"{what} merged by {by} ({called})",
                                 data={"url": action.url, "merged_by": by, "action": action.kind.value}))
        if action.kind not in AUTOMATION:
            lifecycle.request_merged(tx, action, now=now)

    store.run(work)
