"""Freezing a service's automation in Git during an incident, and unfreezing it after: one pull
request each per repository (`backout/INC-n/freeze`, `backout/INC-n/unfreeze`), recorded before
and after the push like a revert, so a crash or a refused push is finished by running it again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.actions import FINISHED, Action, ActionKind, ActionState, freeze_branch
from bot.domain.errors import BackoutError, Conflict, InvalidInput, NotFound
from bot.domain.freeze import Edit, Scope, Stamp, plan_freeze, plan_unfreeze
from bot.domain.models import Actor, Incident, IncidentStatus, parse_incident_ref
from bot.domain.playbooks import Playbook, RepoRole, playbook_named
from bot.domain.ports import Forge, GitRepos, Notifier, Store
from bot.domain.timeline import EventKind
from bot.services import notify
from bot.services.action_records import record_finished, record_started
from bot.services.freeze_text import freeze_body, freeze_message, unfreeze_body
from bot.services.incidents import get_summary
from bot.services.pull_requests import open_for_action

LABELS = ("backout", "incident", "freeze")
_REF = re.compile(r"^(?:INC-)?\d+$", re.IGNORECASE)
# A revert or restore still to be applied: Flux's reconcile: disabled would keep it from the cluster.
_PENDING = frozenset({ActionState.STARTED, ActionState.PUSHED, ActionState.WAITING, ActionState.PR_OPEN})


@dataclass(frozen=True)
class FreezeResult:
    actions: tuple[Action, ...]
    notes: tuple[str, ...]  # what was not done, and why
    message: str


@dataclass(frozen=True)
class _Request:
    """One freeze or unfreeze as asked: who, for which incident, where its pull requests go."""

    store: Store
    git: GitRepos
    notifier: Notifier
    forge: Forge | None
    incident: Incident
    playbook: Playbook
    actor: Actor
    actor_id: str
    now: datetime
    page_url: str | None
    on_behalf_of: str


def incident_for(store: Store, target: str) -> int:
    """The incident a freeze is for: `INC-7`, `7`, or a service's newest active incident."""
    if _REF.match(target.strip()):
        return parse_incident_ref(target)
    found = [i for i in store.run(lambda tx: tx.incidents.list(active=True, limit=500)) if i.service == target]
    if not found:
        raise NotFound(f"no active incident of service {target[:100]!r}: a freeze belongs to an incident "
                       "(its branch is backout/INC-n/freeze); name the incident (INC-7)")
    return max(found, key=lambda i: i.opened_at).id or 0


def freeze(*, store: Store, git: GitRepos, notifier: Notifier, forge: Forge | None, playbooks: Sequence[Playbook],
           incident_id: int, actor: Actor, actor_id: str, now: datetime, reconcile_disabled: bool = False,
           page_url: str | None = None, on_behalf_of: str = "") -> FreezeResult:
    """Pause the service's automation in Git: one `backout/INC-n/freeze` pull request per GitOps
    repository of its playbook. Flux's `reconcile: disabled` only when asked, and never while a
    revert of the incident is still to be applied."""
    request = _request(store, git, notifier, forge, playbooks, incident_id, actor, actor_id, now, page_url,
                       on_behalf_of)
    if reconcile_disabled:
        _refuse_blocking(request)
    actions, notes = [], []
    for entry in request.playbook.repos:
        if entry.role is RepoRole.GITOPS:
            scope = Scope(paths=entry.paths, flux=request.playbook.gitops.flux,
                          argocd=request.playbook.gitops.argocd, reconcile_disabled=reconcile_disabled)
            action, said = _freeze_repo(request, entry.repo, scope)
            actions += [action] if action else []
            notes += said
    if not actions:
        raise InvalidInput(f"nothing to freeze for {request.playbook.service}: " + "; ".join(
            notes or ["its playbook lists no GitOps repository"]))
    return FreezeResult(tuple(actions), tuple(notes), _summary(actions, notes))


def unfreeze(*, store: Store, git: GitRepos, notifier: Notifier, forge: Forge | None, playbooks: Sequence[Playbook],
             incident_id: int, actor: Actor, actor_id: str, now: datetime, page_url: str | None = None,
             on_behalf_of: str = "", repo: str | None = None) -> FreezeResult:
    """Take out exactly what the incident's freezes added: one `backout/INC-n/unfreeze` pull request
    per frozen repository (or `repo` only)."""
    request = _request(store, git, notifier, forge, playbooks, incident_id, actor, actor_id, now, page_url,
                       on_behalf_of, active=False)
    frozen = [a for a in store.run(lambda tx: tx.actions.for_incident(incident_id))
              if a.kind is ActionKind.FREEZE and repo in (None, a.repo)]
    if not frozen:
        raise NotFound(f"{request.incident.ref} has no freeze to undo")
    actions, notes = [], []
    for action in frozen:
        if action.state is ActionState.PR_OPEN:
            notes.append(f"the freeze of {action.repo} is not merged ({action.url}): close its "
                         f"{action.request_noun} instead")
        elif action.state in (ActionState.PUSHED, ActionState.MERGED):
            done, said = _unfreeze_repo(request, action)
            actions += [done] if done else []
            notes += said
        else:
            notes.append(f"the freeze of {action.repo} was never pushed ({action.state.value})")
    if not actions:
        raise Conflict(f"nothing to unfreeze for {request.incident.ref}: " + "; ".join(notes))
    return FreezeResult(tuple(actions), tuple(notes), _summary(actions, notes))


def _request(store: Store, git: GitRepos, notifier: Notifier, forge: Forge | None, playbooks: Sequence[Playbook],
             incident_id: int, actor: Actor, actor_id: str, now: datetime, page_url: str | None,
             on_behalf_of: str, *, active: bool = True) -> _Request:
    incident = get_summary(store=store, incident_id=incident_id).incident
    playbook = playbook_named(playbooks, incident.playbook)
    if playbook is None:
        raise InvalidInput(f"{incident.ref} has no playbook: Backout does not know the service's objects "
                           "and paths, so it cannot freeze them")
    return _Request(store, git, notifier, forge, incident, playbook, actor, actor_id, now, page_url, on_behalf_of)


def _refuse_blocking(request: _Request) -> None:
    actions = request.store.run(lambda tx: tx.actions.for_incident(request.incident.id or 0))
    mitigating = request.incident.status is IncidentStatus.MITIGATING
    pending = [a for a in actions if a.kind is ActionKind.REVERT
               and (a.state in _PENDING or (a.state is ActionState.MERGED and mitigating))]
    if pending:
        raise Conflict(f"Flux's reconcile: disabled would keep {pending[0].label} ({pending[0].branch}) from the "
                       "cluster: freeze without it now, and ask for it once the revert is applied")


def _freeze_repo(request: _Request, repo: str, scope: Scope) -> tuple[Action | None, list[str]]:
    incident_id = request.incident.id or 0
    branch = freeze_branch(incident_id)
    started = record_started(request.store, incident_id=incident_id, kind=ActionKind.FREEZE, repo=repo, sha=repo,
                             branch=branch, actor=request.actor, actor_id=request.actor_id, now=request.now,
                             auto=request.actor is not Actor.USER, on_behalf_of=request.on_behalf_of)
    if started.state not in FINISHED:
        stored = [Edit.of(e) for e in started.detail.get("edits", [])]
        if stored and _exists(request, repo, branch, started):
            edits, notes = stored, list(started.detail.get("notes", []))  # pushed before a crash: adopt it
        else:
            expires = request.now + request.playbook.freeze.expires_after
            stamp = Stamp(request.incident.ref, started.who or request.actor.value, request.now, expires)
            plan = plan_freeze(_manifests(request, repo, started), scope, stamp)
            if not plan.edits:
                record_finished(request.store, started, state=ActionState.FAILED, now=request.now,
                                kind=EventKind.ACTION_FAILED, detail={"error": "nothing to freeze"},
                                text=f"Nothing to freeze in {repo}: " + "; ".join(
                                    plan.notes or ["no automation found"]))
                return None, [f"{repo}: {note}" for note in plan.notes]
            edits, notes = list(plan.edits), list(plan.notes)
            started = _save(request, started, {"edits": [e.as_dict() for e in edits], "notes": notes,
                                               "expires_at": expires.isoformat()})
            _push(request, started, plan.files, freeze_message(request.incident, edits, notes))
        started = record_finished(
            request.store, started, state=ActionState.PUSHED, now=request.now, kind=EventKind.FREEZE_PUSHED,
            text=(f"Freeze of {request.playbook.service}'s automation pushed as {branch} on {repo}: "
                  + "; ".join(e.what for e in edits) + "".join(f". Not done: {n}" for n in notes)),
            detail={"edits": [e.as_dict() for e in edits], "notes": notes})
    return _open_request(request, started, unfreezing=False), [f"{repo}: {n}" for n in started.detail.get("notes", [])]


def _unfreeze_repo(request: _Request, freeze_action: Action) -> tuple[Action | None, list[str]]:
    incident_id = request.incident.id or 0
    repo = freeze_action.repo
    branch = freeze_branch(incident_id, ActionKind.UNFREEZE)
    started = record_started(request.store, incident_id=incident_id, kind=ActionKind.UNFREEZE, repo=repo, sha=repo,
                             branch=branch, actor=request.actor, actor_id=request.actor_id, now=request.now,
                             auto=request.actor is not Actor.USER, on_behalf_of=request.on_behalf_of,
                             any_state=True)
    if started.state not in FINISHED:
        edits = [Edit.of(e) for e in freeze_action.detail.get("edits", [])]
        if _exists(request, repo, branch, started):
            missing = list(started.detail.get("missing", []))
        else:
            files, missing = plan_unfreeze(_manifests(request, repo, started), edits)
            if not files:
                record_finished(request.store, started, state=ActionState.FAILED, now=request.now,
                                kind=EventKind.ACTION_FAILED, detail={"error": "nothing to unfreeze"},
                                text=f"Nothing to unfreeze in {repo}: " + "; ".join(
                                    missing or ["the freeze is not on the watched branch (not merged?)"]))
                return None, [f"{repo}: {m}" for m in missing] or [f"{repo}: the freeze is not merged"]
            started = _save(request, started, {"missing": missing})
            _push(request, started, files, (
                f"Unfreeze automation for {request.incident.ref}\n\nUndoes {freeze_action.branch}.\n\n"
                f"Backout-Incident: {request.incident.ref}\n"))
        started = record_finished(
            request.store, started, state=ActionState.PUSHED, now=request.now, kind=EventKind.UNFREEZE_PUSHED,
            text=(f"Unfreeze pushed as {branch} on {repo}: takes out what {freeze_action.branch} added"
                  + "".join(f". Not undone: {m}" for m in missing)),
            detail={"missing": missing, "freeze_id": freeze_action.id})
    return _open_request(request, started, unfreezing=True), list(started.detail.get("missing", []))


def _exists(request: _Request, repo: str, branch: str, action: Action) -> bool:
    try:
        return request.git.remote_branch(repo, branch) is not None
    except BackoutError as exc:
        _failed(request, action, exc)
        raise


def _manifests(request: _Request, repo: str, action: Action) -> dict[str, str]:
    try:
        return request.git.manifests(repo)
    except BackoutError as exc:
        _failed(request, action, exc)
        raise


def _push(request: _Request, action: Action, files: dict[str, str], message: str) -> None:
    try:
        request.git.push_files(action.repo, branch=action.branch, message=message,
                               files={path: text.encode("utf-8") for path, text in files.items()})
    except BackoutError as exc:
        _failed(request, action, exc)
        raise


def _failed(request: _Request, action: Action, exc: BackoutError) -> None:
    verb = "freeze" if action.kind is ActionKind.FREEZE else "unfreeze"
    failed = record_finished(request.store, action, state=ActionState.FAILED, now=request.now,
                             kind=EventKind.ACTION_FAILED, detail={"error": str(exc)},
                             text=(f"The {verb} of {action.repo} ({action.branch}) failed: {exc}. Run "
                                   f"`backout {verb} {request.incident.ref}` again to retry."))
    notify.action_update(notifier=request.notifier, incident=request.incident, action=failed, text=str(exc))


def _save(request: _Request, action: Action, detail: dict[str, object]) -> Action:
    saved = action.model_copy(update={"detail": {**action.detail, **detail}, "updated_at": request.now})
    request.store.run(lambda tx: tx.actions.save(saved))
    return saved


def _open_request(request: _Request, action: Action, *, unfreezing: bool) -> Action:
    """Its pull request, on a forge that handles the repository, unless already open."""
    forge = request.forge
    if forge is None or not forge.handles(action.repo) or action.state is not ActionState.PUSHED:
        return action
    noun = forge.request_noun(action.repo)
    service = request.playbook.service
    if unfreezing:
        title = f"{request.incident.ref}: unfreeze automation for {service}"
        body = unfreeze_body(request.incident, action, noun=noun, page_url=request.page_url)
    else:
        title = f"{request.incident.ref}: freeze automation for {service}"
        body = freeze_body(request.incident, action, noun=noun, page_url=request.page_url)
    return open_for_action(store=request.store, forge=forge, notifier=request.notifier, action=action,
                           base=request.git.branch(action.repo), title=title, body=body, draft=False,
                           reviewers=request.playbook.actions.reviewers, now=request.now, labels=LABELS)


def _summary(actions: Sequence[Action], notes: Sequence[str]) -> str:
    made = [f"{a.label}: {a.url or a.branch} ({a.state.value})" for a in actions]
    return "; ".join(made) + "".join(f"\nnot done: {note}" for note in notes)
