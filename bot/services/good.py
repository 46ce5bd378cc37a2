"""Last known good, as `backout good`, the API, the incident page and a restore see it: each
revision of the service's repositories as it ran (from the controller objects that deploy the
service, else commit time plus `sync_delay`), with the service's incidents and their
verifications, judged by bot/domain/good.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.changes import AppliedSource, Change
from bot.domain.durations import format_duration
from bot.domain.errors import NotFound
from bot.domain.gitops import AppliedRevision
from bot.domain.good import Deployed, IncidentSpan, LastGood, last_good
from bot.domain.playbooks import Playbook, RepoRole
from bot.domain.ports import Store, Transaction
from bot.services.applied import deploying_objects

# How far back a last known good is looked for: further back, the service's paths have moved on too far
# for a restore to be a sane step (and the stores' history may be pruned).
GOOD_WINDOW = timedelta(days=90)
_INCIDENTS = 1000  # the service's incidents read: more than a busy service has in the window


def service_playbook(playbooks: Sequence[Playbook], service: str) -> Playbook:
    """The playbook of a service (or the playbook of that name); NotFound says which exist."""
    found = next((p for p in playbooks if p.service == service), None) or next(
        (p for p in playbooks if p.name == service), None)
    if found is None:
        known = ", ".join(sorted({p.service for p in playbooks})) or "none"
        raise NotFound(f"no playbook for service {service!r} (services with a playbook: {known})")
    return found


def gitops_repos(playbook: Playbook) -> list[str]:
    """The repositories that deploy the service (role gitops): where a restore applies."""
    return [entry.repo for entry in playbook.repos if entry.role is RepoRole.GITOPS]


def last_known_good(*, store: Store, playbook: Playbook, now: datetime, repo: str | None = None) -> list[LastGood]:
    """The service's last known good revision in each of its GitOps repositories (or in `repo`)."""
    repos = [r for r in gitops_repos(playbook) if repo is None or r == repo]
    if repo is not None and not repos:
        raise NotFound(f"{repo!r} is not a GitOps repository of the {playbook.name} playbook "
                       f"(its GitOps repositories: {', '.join(gitops_repos(playbook)) or 'none'})")
    return store.run(lambda tx: [_for_repo(tx, playbook, name, now=now) for name in repos])


def _for_repo(tx: Transaction, playbook: Playbook, repo: str, *, now: datetime) -> LastGood:
    since = now - GOOD_WINDOW
    deployed = _by_controller(tx, playbook, repo, since=since, now=now) or _by_commit_time(
        tx, playbook, repo, since=since, now=now)
    return last_good(deployed, _incidents(tx, playbook, since=since), service=playbook.service, repo=repo,
                     good_after=playbook.good_after, now=now)


def _by_controller(tx: Transaction, playbook: Playbook, repo: str, *, since: datetime,
                   now: datetime) -> list[Deployed]:
    """Each revision the service's objects applied: from the first object's start, healthy when
    every object that applied it reported it healthy (the last of them)."""
    if not tx.gitops.objects([repo]):
        return []
    chosen = deploying_objects(tx, playbook)
    revisions = tx.gitops.applied([repo], since=since, until=now, objects=sorted(chosen) if chosen is not None
                                  else None)
    by_sha: dict[str, list[AppliedRevision]] = {}
    for revision in revisions:
        by_sha.setdefault(revision.sha, []).append(revision)
    changes = {c.sha: c for c in tx.changes.get_many(repo, sorted(by_sha))}
    found = []
    for sha, applied in by_sha.items():
        healthy = [r.healthy_at for r in applied]
        labels = ", ".join(sorted({r.label for r in applied}))
        change = changes.get(sha)
        found.append(Deployed(
            repo=repo, sha=sha, subject=change.subject if change else "", author=change.author if change else "",
            applied_at=min(r.applied_at for r in applied),
            healthy_at=None if any(h is None for h in healthy) else max(h for h in healthy if h is not None),
            how=f"{labels} reported it applied and healthy"))
    return found


def _by_commit_time(tx: Transaction, playbook: Playbook, repo: str, *, since: datetime,
                    now: datetime) -> list[Deployed]:
    """Without controller events: each commit on the watched branch from its applied time (commit
    time plus `sync_delay`, or what a forge or Prometheus said), healthy from then."""
    delay = playbook.suspects.sync_delay
    return [_from_change(change, delay) for change in tx.changes.applied_between([repo], since - delay, now)]


def _from_change(change: Change, delay: timedelta) -> Deployed:
    at = change.applied(sync_delay=delay)
    how = (f"committed at {change.committed_at:%H:%M} UTC, plus the sync delay ({format_duration(delay)}): "
           "no controller reports on it" if change.applied_source is AppliedSource.COMMIT_TIME
           else f"applied time from {change.applied_source.value}")
    return Deployed(repo=change.repo, sha=change.sha, subject=change.subject, author=change.author,
                    applied_at=at, healthy_at=at, how=how)


def _incidents(tx: Transaction, playbook: Playbook, *, since: datetime) -> list[IncidentSpan]:
    spans = []
    for incident in tx.incidents.list(limit=_INCIDENTS):
        if incident.id is None or incident.service != playbook.service:
            continue
        ended = incident.resolved_at or incident.closed_at
        if ended is not None and ended < since:
            continue
        verification = tx.watch.verification(incident.id)
        spans.append(IncidentSpan(ref=incident.ref, started_at=min(incident.started_at, incident.opened_at),
                                  resolved_at=ended,
                                  verified=verification.outcome if verification else None,
                                  verified_at=verification.started_at if verification else None))
    return spans
