"""Acting: revert branches and incident branches, idempotent, recorded before and after."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.actions import (
    FINISHED,
    Action,
    ActionKind,
    ActionState,
    incident_branch,
    revert_branch,
    revert_message,
)
from bot.domain.changes import Change
from bot.domain.drift import is_handle
from bot.domain.errors import BackoutError, InvalidInput, NotFound
from bot.domain.incidents import refuse
from bot.domain.models import Actor, Incident
from bot.domain.plan import first_step
from bot.domain.playbooks import ActionMode, Playbook, playbook_named
from bot.domain.ports import Forge, GitRepos, Notifier, Store, Transaction
from bot.domain.safety import revert_warnings
from bot.domain.suspects import Ranking
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.action_records import record_finished, record_proposed, record_started
from bot.services.drift import refuse_revert
from bot.services.incidents import find_changes, get_summary, require
from bot.services.override import default_target, excluded, require_override
from bot.services.pull_requests import branch_body, open_for_action, revert_body

_SHA = re.compile(r"^[0-9a-f]{4,64}$")


@dataclass(frozen=True)
class ActionResult:
    action: Action
    message: str
    branch_action: Action | None = None  # the incident branch made when the revert conflicted


def choose_commit(
    *, store: Store, playbook: Playbook | None, incident_id: int, sha: str | None
) -> Change:
    """The commit to revert: the given sha (a unique prefix will do), else the best suspect (never
    one that is reverted, ruled out or below the evidence floor)."""

    def work(tx: Transaction) -> Change:
        require(tx, incident_id)
        if sha is None:
            best = default_target(tx.rankings.get(incident_id), incident_id)
            if best.drift is not None:
                raise refuse_revert(tx, best.sha, best.drift)
            found = tx.changes.find(best.repo, best.sha)
        else:
            if is_handle(sha):
                raise refuse_revert(tx, sha.lower())
            if not _SHA.match(sha.lower()):
                raise InvalidInput(f"not a commit sha: {sha[:40]!r}")
            repos = [entry.repo for entry in playbook.repos] if playbook else []
            found = [c for c in tx.changes.find(None, sha.lower()) if not repos or c.repo in repos]
        if not found:
            raise NotFound(f"no known change {sha or 'for the best suspect'} in the watched repositories")
        if len(found) > 1:
            raise InvalidInput(f"{sha} is ambiguous: {', '.join(c.short for c in found)}")
        return found[0]

    return store.run(work)


def rollback(
    *,
    store: Store,
    git: GitRepos,
    notifier: Notifier,
    incident_id: int,
    change: Change,
    actor: Actor,
    actor_id: str,
    now: datetime,
    auto: bool = False,
    forge: Forge | None = None,
    reviewers: Sequence[str] = (),
    page_url: str | None = None,
    on_behalf_of: str = "",
) -> ActionResult:
    """Push `backout/INC-n/revert-<sha7>` with a real `git revert` and, on a forge, open its pull
    request; on a conflict, push the incident branch (with a draft PR) instead. Recorded as
    `started` before the push, so a crash at any point is finished by the next attempt, which
    adopts the branch and the pull request it finds. `on_behalf_of`: whom the actor acts for."""
    branch = revert_branch(incident_id, change.sha)
    warnings = revert_safety(git, change)
    started = record_started(store, incident_id=incident_id, kind=ActionKind.REVERT, repo=change.repo,
                             sha=change.sha, branch=branch, actor=actor, actor_id=actor_id, now=now, auto=auto,
                             warnings=warnings, on_behalf_of=on_behalf_of)
    incident = store.run(lambda tx: require(tx, incident_id))
    if started.state in FINISHED:
        current, branch_action, message = started, None, f"already done: {started.state.value} {branch}"
        if current.state is ActionState.CONFLICTED:
            branch_action = store.run(lambda tx: tx.actions.get(incident_id, ActionKind.INCIDENT_BRANCH, "",
                                                                repo=change.repo))
    else:
        current, branch_action, message = _push_revert(
            store=store, git=git, notifier=notifier, incident=incident, change=change, action=started,
            actor=actor, actor_id=actor_id, now=now, on_behalf_of=on_behalf_of)
    if forge is None or not forge.handles(change.repo):
        return ActionResult(current, message, branch_action)
    current = _cross_check(store=store, forge=forge, branch=git.branch(change.repo), change=change, action=current,
                           now=now)
    view = get_summary(store=store, incident_id=incident_id)
    if current.state is ActionState.PUSHED and not current.url:
        current = open_for_action(
            store=store, forge=forge, notifier=notifier, action=current, base=git.branch(change.repo),
            title=f"Revert \"{change.subject[:150]}\" ({incident.ref})",
            body=revert_body(view, change=change, warnings=warnings, page_url=page_url,
                             pinned=current.detail.get("pinned", []), unpinned=current.detail.get("unpinned", []),
                             noun=forge.request_noun(change.repo)),
            draft=False, reviewers=reviewers, now=now)
        message += f"; {current.request_noun} {current.url}"
    if branch_action is not None and branch_action.state is ActionState.PUSHED and not branch_action.url:
        branch_action = open_for_action(
            store=store, forge=forge, notifier=notifier, action=branch_action,
            base=git.branch(change.repo), title=f"{incident.ref}: incident branch (revert of {change.short} "
                                                f"conflicts)",
            body=branch_body(view, change=change, conflicts=current.detail.get("conflicts", []),
                             page_url=page_url, noun=forge.request_noun(change.repo)),
            draft=True, reviewers=reviewers, now=now)
        message += f"; draft {branch_action.request_noun} {branch_action.url}"
    return ActionResult(current, message, branch_action)


def _cross_check(*, store: Store, forge: Forge, branch: str, change: Change, action: Action, now: datetime) -> Action:
    """Ask the forge's own dry-run revert (GitLab has one) once, beside the local verdict; a
    disagreement goes on the timeline (the forge sees its branch head, which may be ahead of the
    mirror). The local verdict decides: it is the revert Backout pushed."""
    if action.state not in (ActionState.PUSHED, ActionState.CONFLICTED) or "forge_check" in action.detail:
        return action
    try:
        verdict = forge.revert_dry_run(change.repo, change.sha, branch=branch)
    except BackoutError:
        verdict = None
    if verdict is None:
        return action
    local_clean = action.state is ActionState.PUSHED
    checked = action.model_copy(update={"detail": {**action.detail, "forge_check": "clean" if verdict else "conflict"},
                                        "updated_at": now})

    def record(tx: Transaction) -> Action:
        tx.actions.save(checked)
        if verdict != local_clean:
            forge_says = "applies cleanly" if verdict else "conflicts"
            local_says = "applied cleanly" if local_clean else "conflicted"
            tx.timeline.append(event(
                incident_id=action.incident_id, at=now, kind=EventKind.NOTE, actor=Actor.BACKOUT,
                text=(f"The forge's own dry-run revert of {change.short} on {branch} says it {forge_says}; the "
                      f"local revert {local_says}. The forge sees its newest {branch}, which may be ahead of "
                      "Backout's mirror: check the branch before merging."),
                data={"forge_check": checked.detail["forge_check"], "local": "clean" if local_clean else "conflict",
                      "sha": change.sha}))
        return checked

    return store.run(record)


def revert_safety(git: GitRepos, change: Change) -> tuple[str, ...]:
    """What a revert of this change may not undo (from its paths and its diff)."""
    return revert_warnings(change.paths, _patch(git, change))


def _patch(git: GitRepos, change: Change) -> str:
    try:
        return git.patch(change.repo, change.sha)
    except BackoutError:
        return ""  # the paths alone still give most warnings


PLAN_DIFF_LINES = 40  # what a confirmation shows of the diff; the pull request has it whole


@dataclass(frozen=True)
class RollbackPlan:
    """What a person sees and confirms before a rollback starts (CLI prompt, Slack modal, API)."""

    incident_id: int
    incident_ref: str
    change: Change
    branch: str
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    files: tuple[str, ...] = ()
    diff: str = ""  # shortened to PLAN_DIFF_LINES, with a line saying how much more there is
    excluded: str | None = None  # why it is no rollback target: confirming it needs an override


def plan_rollback(*, store: Store, git: GitRepos, playbooks: Sequence[Playbook], incident_id: int,
                  sha: str | None) -> RollbackPlan:
    """The commit to revert (the best suspect, or `sha`), why, what it touches, its revert-safety
    warnings and, for a change the ranking excluded, why."""
    view = get_summary(store=store, incident_id=incident_id)
    refuse(view.incident, "be rolled back")
    change = choose_commit(store=store, playbook=playbook_named(playbooks, view.incident.playbook),
                           incident_id=incident_id, sha=sha)
    suspect = next((s for s in view.ranking.suspects if s.sha == change.sha), None)
    patch = _patch(git, change)
    lines = patch.splitlines()
    diff = "\n".join(lines[:PLAN_DIFF_LINES])
    if len(lines) > PLAN_DIFF_LINES:
        diff += f"\n... {len(lines) - PLAN_DIFF_LINES} more lines of diff"
    return RollbackPlan(
        incident_id=incident_id, incident_ref=view.incident.ref, change=change,
        branch=revert_branch(incident_id, change.sha),
        reasons=suspect.reasons if suspect else ("chosen by hand: not among the ranked suspects",),
        warnings=revert_warnings(change.paths, patch), files=tuple(change.paths), diff=diff,
        excluded=store.run(lambda tx: excluded(tx, incident_id, change.sha)))


def confirmed_rollback(*, store: Store, git: GitRepos, notifier: Notifier, forge: Forge | None,
                       playbooks: Sequence[Playbook], incident_id: int, sha: str, actor: Actor, actor_id: str,
                       now: datetime, page_url: str | None, force: bool = False,
                       on_behalf_of: str = "") -> ActionResult:
    """The rollback a person confirmed (chat button, CLI prompt, API): the commit they saw, with
    the playbook's reviewers on the pull request. A change the ranking excluded needs `force`."""
    view = get_summary(store=store, incident_id=incident_id)
    playbook = playbook_named(playbooks, view.incident.playbook)
    change = choose_commit(store=store, playbook=playbook, incident_id=incident_id, sha=sha)
    store.run(lambda tx: require_override(tx, incident_id=incident_id, change=change, force=force, actor=actor,
                                          actor_id=actor_id, now=now, on_behalf_of=on_behalf_of))
    return rollback(store=store, git=git, notifier=notifier, incident_id=incident_id, change=change, actor=actor,
                    actor_id=actor_id, now=now, forge=forge, page_url=page_url,
                    reviewers=playbook.actions.reviewers if playbook else (), on_behalf_of=on_behalf_of)


def _push_revert(*, store: Store, git: GitRepos, notifier: Notifier, incident: Incident, change: Change,
                 action: Action, actor: Actor, actor_id: str, now: datetime, on_behalf_of: str = "",
                 ) -> tuple[Action, Action | None, str]:
    try:
        result = git.push_revert(change.repo, sha=change.sha, branch=action.branch, message=revert_message(
            incident_ref=incident.ref, incident_title=incident.title, sha=change.sha,
            subject=change.subject))
    except BackoutError as exc:
        failed = record_finished(store, action, state=ActionState.FAILED, now=now, kind=EventKind.ACTION_FAILED,
                                 text=f"Revert of {change.short} failed: {exc}. Run the rollback again to retry.",
                                 detail={"error": str(exc)})
        notify.action_update(notifier=notifier, incident=incident, action=failed, text=str(exc))
        raise
    if result.conflicts:
        files = ", ".join(result.conflicts)
        conflicted = record_finished(
            store, action, state=ActionState.CONFLICTED, now=now, kind=EventKind.REVERT_CONFLICTED,
            text=(f"Reverting {change.short} conflicts with later changes in {files}; nothing was "
                  f"pushed. Opening incident branch {incident_branch(incident.id or 0)} to work on."),
            detail={"conflicts": list(result.conflicts)})
        branch_action = open_incident_branch(store=store, git=git, notifier=notifier,
                                             incident_id=incident.id or 0, repo=change.repo, actor=actor,
                                             actor_id=actor_id, now=now, on_behalf_of=on_behalf_of)
        notify.action_update(notifier=notifier, incident=incident, action=conflicted,
                             text=f"conflicts in {files}")
        return conflicted, branch_action, (f"revert conflicts in {files}; incident branch "
                                           f"{branch_action.branch} pushed")
    if result.waiting is not None:
        waiting = record_finished(
            store, action, state=ActionState.WAITING, now=now, kind=EventKind.REVERT_WAITING,
            text=(f"The Git host of {change.repo} does not answer ({result.waiting}). The revert of "
                  f"{change.short} applies cleanly on the last known {git.branch(change.repo)} (prepared as "
                  f"{(result.prepared_sha or '')[:7]}); Backout pushes it and opens the pull request as soon "
                  "as the host answers."),
            detail={"waiting": result.waiting, "prepared_sha": result.prepared_sha, "pinned": list(result.pinned),
                    "unpinned": list(result.unpinned)})
        notify.action_update(notifier=notifier, incident=incident, action=waiting,
                             text=f"Git host unreachable: prepared, pushed when it answers ({result.waiting})")
        return waiting, None, ("the Git host does not answer: revert prepared, pushed when it answers "
                               f"({result.waiting})")
    how = "found already pushed (adopted)" if result.adopted else "pushed"
    pins = "".join(f" Pinned against image automation: {pin}." for pin in result.pinned)
    pins += "".join(f" Not pinned: {note}." for note in result.unpinned)
    pushed = record_finished(
        store, action, state=ActionState.PUSHED, now=now, kind=EventKind.REVERT_PUSHED,
        text=f"Revert of {change.short} ({change.subject[:80]}) {how} as branch {action.branch}.{pins}",
        detail={"pushed_sha": result.pushed_sha, "adopted": result.adopted, "pinned": list(result.pinned),
                "unpinned": list(result.unpinned)})
    notify.action_update(notifier=notifier, incident=incident, action=pushed, text=how)
    return pushed, None, f"revert branch {action.branch} {how} ({(result.pushed_sha or '')[:12]})"


def open_incident_branch(
    *, store: Store, git: GitRepos, notifier: Notifier, incident_id: int, repo: str, actor: Actor,
    actor_id: str, now: datetime, on_behalf_of: str = "",
) -> Action:
    """Cut `backout/INC-n/incident` from the watched branch (or adopt it)."""
    branch = incident_branch(incident_id)
    started = record_started(store, incident_id=incident_id, kind=ActionKind.INCIDENT_BRANCH, repo=repo, sha="",
                             branch=branch, actor=actor, actor_id=actor_id, now=now, auto=False,
                             on_behalf_of=on_behalf_of)
    if started.state in FINISHED:
        return started
    try:
        tip = git.push_branch(repo, branch=branch)
    except BackoutError as exc:
        record_finished(store, started, state=ActionState.FAILED, now=now, kind=EventKind.ACTION_FAILED,
                        text=f"Incident branch {branch} failed: {exc}", detail={"error": str(exc)})
        raise
    return record_finished(store, started, state=ActionState.PUSHED, now=now, kind=EventKind.BRANCH_PUSHED,
                           text=f"Incident branch {branch} pushed at {tip[:12]}", detail={"pushed_sha": tip})


def apply_open_policy(
    *, store: Store, git: GitRepos, notifier: Notifier, playbook: Playbook, incident_id: int,
    ranking: Ranking, now: datetime, forge: Forge | None = None, page_url: str | None = None,
) -> Action | None:
    """The playbook's `actions.on_open`: off, propose (record the revert), or open_pr (make it), for
    a confident suspect, or with `actions.plan: first_step` for the rollback plan's first step."""
    mode = playbook.actions.on_open
    top = ranking.best  # never a reverted, ruled-out or weak change
    threshold = playbook.actions.min_confidence
    if threshold is None:
        threshold = playbook.suspects.min_confidence
    target = top if ranking.confident else first_step(ranking, playbook)
    if mode is ActionMode.OFF or target is None or target.score < threshold:
        return None  # only a confident suspect (or the plan's first step, opted in) is acted on without a person
    if target.drift is not None:
        return None  # an out-of-band change: nothing in Git to revert; people are offered the sync
    change = choose_commit(store=store, playbook=playbook, incident_id=incident_id, sha=target.sha)
    if mode is ActionMode.PROPOSE:
        return record_proposed(store, incident_id=incident_id, change=change, score=target.score, now=now)
    recent = store.run(lambda tx: tx.actions.count_auto_since(playbook.name, now - timedelta(hours=1)))
    if recent >= playbook.actions.max_per_hour:
        store.run(lambda tx: tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.ACTION_SKIPPED, actor=Actor.BACKOUT,
            text=(f"Automatic revert of {change.short} skipped: {recent} automatic actions for "
                  f"playbook {playbook.name} in the last hour (at most "
                  f"{playbook.actions.max_per_hour}). Roll back by hand if needed."))))
        return record_proposed(store, incident_id=incident_id, change=change, score=target.score, now=now)
    try:
        return rollback(store=store, git=git, notifier=notifier, incident_id=incident_id, change=change,
                        actor=Actor.BACKOUT, actor_id="policy:open_pr", now=now, auto=True, forge=forge,
                        reviewers=playbook.actions.reviewers, page_url=page_url).action
    except BackoutError:
        return None  # recorded on the timeline as action.failed; people can retry


def push_waiting(*, store: Store, git: GitRepos, notifier: Notifier, playbooks: Sequence[Playbook],
                 now: datetime, forge: Forge | None = None,
                 page_url: Callable[[int], str | None] = lambda _: None) -> int:
    """Retry the reverts prepared while the Git host was down: the same rollback again (it fetches,
    reverts on the current tip, pushes and opens the pull request, or waits once more)."""
    done = 0
    for action in store.run(lambda tx: tx.actions.with_state(ActionState.WAITING)):
        if action.kind is not ActionKind.REVERT:
            continue  # a restore has its own retry (bot/services/restore.py)
        found = find_changes(store, action.repo, action.commit_sha)
        if not found:
            continue
        try:
            git.remote_branch(action.repo, action.branch)  # does the host answer yet? (one ls-remote)
        except BackoutError:
            continue  # still down: nothing new to record
        incident = get_summary(store=store, incident_id=action.incident_id).incident
        playbook = playbook_named(playbooks, incident.playbook)
        try:
            result = rollback(store=store, git=git, notifier=notifier, incident_id=action.incident_id,
                              change=found[0], actor=Actor.SCHEDULER, actor_id="git-retry", now=now,
                              auto=action.auto, forge=forge, page_url=page_url(action.incident_id),
                              reviewers=playbook.actions.reviewers if playbook else ())
        except BackoutError:
            continue  # recorded on the timeline; the next round tries again
        done += result.action.state is not ActionState.WAITING
    return done
