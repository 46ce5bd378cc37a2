"""A service's applied times: from the controller objects that deploy it.

When every object reports (a Flux Alert with `eventSources` `*`), each applies a revision in its
own time, and the first to report is often one that deploys something else: a service's changes
take the times of the objects its playbook names, or, when it names none, of the objects whose
path (Argo CD's source path) holds the service's paths. When no object can be chosen, the first
object's time stands, as before."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.changes import AppliedSource, Change
from bot.domain.gitops import AppliedRevision, Controller, ObjectState, path_holds
from bot.domain.playbooks import Playbook, RepoRole
from bot.domain.ports import Transaction


def service_changes(tx: Transaction, playbook: Playbook, *, since: datetime, until: datetime) -> list[Change]:
    """The changes applied to the playbook's service in the window, each at the time the objects
    that deploy the service applied it (the rollout's start; `healthy_at` its end)."""
    repos = [entry.repo for entry in playbook.repos]
    changes = {(c.repo, c.sha): c for c in tx.changes.applied_between(repos, since, until)}
    objects = tx.gitops.objects(repos)
    if not objects:  # no controller reports on these repositories: nothing to choose from
        return list(changes.values())
    chosen = _deploying(playbook, objects)
    revisions = tx.gitops.applied(repos, since=since, until=until, shas=sorted({sha for _, sha in changes}),
                                  objects=sorted(chosen) if chosen is not None else None)
    first: dict[tuple[str, str], AppliedRevision] = {}
    for revision in sorted(revisions, key=lambda r: r.applied_at, reverse=True):
        first[(revision.repo, revision.sha)] = revision
    missing: dict[str, list[str]] = {}
    for repo, sha in first.keys() - changes.keys():
        missing.setdefault(repo, []).append(sha)
    for repo, shas in missing.items():  # applied by the service's objects in the window, by others earlier
        changes.update({(c.repo, c.sha): c for c in tx.changes.get_many(repo, sorted(shas))})
    return [_timed(change, first.get(key)) for key, change in changes.items()]


def deploying_objects(tx: Transaction, playbook: Playbook) -> set[str] | None:
    """The ids of the objects that deploy the playbook's service, or None when Backout cannot
    tell (no object named, no object's path known to hold the service's paths)."""
    return _deploying(playbook, tx.gitops.objects([entry.repo for entry in playbook.repos]))


def _deploying(playbook: Playbook, objects: Sequence[ObjectState]) -> set[str] | None:
    if playbook.gitops.any:
        return {o.object_id for o in objects if playbook.gitops.names_object(o.object_id)}
    paths = [p for entry in playbook.repos if entry.role is RepoRole.GITOPS for p in entry.paths]
    holding = {o.object_id for o in objects if o.path is not None and path_holds(o.path, paths)}
    return holding or None


def _timed(change: Change, revision: AppliedRevision | None) -> Change:
    if revision is None:
        return change
    controller = revision.object_id.partition(":")[0]
    source = AppliedSource.FLUX if controller == Controller.FLUX.value else AppliedSource.ARGOCD
    return change.model_copy(update={"applied_at": revision.applied_at, "applied_source": source,
                                     "applied_by": revision.label, "healthy_at": revision.healthy_at})
