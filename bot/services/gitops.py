"""GitOps controllers: what Flux and Argo CD report applying, or failing to apply, meets Git.

A success at revision X applied the changes after the object's last applied revision, up to X:
they get the controller's time, kept per object too (a service's times come from the objects
that deploy it), the rollout's start as the applied time and its end as the healthy time. A
failure at X names the changes since the object's last good revision: they become the strongest
suspects, and a playbook may open an incident on it, resolved by the object's next success. Each
event counts once, however often it is delivered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.changes import AppliedSource
from bot.domain.drift import Drift
from bot.domain.errors import BackoutError
from bot.domain.gitops import AppliedRevision, Controller, ControllerEvent, Failure, ObjectState, Outcome
from bot.domain.grouping import PLAYBOOK_LABEL
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook, RepoRole
from bot.domain.ports import GitRepos, Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services.changelog import refresh_changes
from bot.services.drift import drift_of, is_drift, store_drift

RECONCILE_FAILED = "reconcile_failed"
RANGE_LIMIT = 500  # changes one event may cover


@dataclass
class ControllerReport:
    """What one controller event changed."""

    duplicate: bool = False
    repo: str | None = None
    sha: str | None = None  # the full sha of the event's revision, when a watched repository has it
    applied: int = 0  # changes that got the controller's applied time
    failure: Failure | None = None
    recovered: list[Failure] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)  # incidents to open or resolve
    note: str = ""
    fetching: str | None = None  # nothing recorded yet: the revision waits for a fetch still running
    drift: Drift | None = None  # an out-of-band change it reported (or the correction of one)
    drift_repos: list[str] = field(default_factory=list)  # the repositories of the playbooks it concerns

    @property
    def changed_ranking(self) -> bool:
        return bool(self.applied or self.failure or self.recovered or self.drift)

    @property
    def rerank(self) -> list[str]:
        """The repositories whose active incidents should be ranked again."""
        if not self.changed_ranking:
            return []
        return list(dict.fromkeys(([self.repo] if self.repo else []) + (self.drift_repos if self.drift else [])))


def record_controller_event(
    *,
    store: Store,
    git: GitRepos,
    playbooks: Sequence[Playbook],
    repos: Sequence[str],
    event: ControllerEvent,
    now: datetime,
    import_window: timedelta,
    wait: float | None = None,
) -> ControllerReport:
    """Record one event; see the module docstring and `record_controller_events`."""
    return record_controller_events(store=store, git=git, playbooks=playbooks, repos=repos, events=[event],
                                    now=now, import_window=import_window, wait=wait)[0]


def record_controller_events(
    *,
    store: Store,
    git: GitRepos,
    playbooks: Sequence[Playbook],
    repos: Sequence[str],
    events: Sequence[ControllerEvent],
    now: datetime,
    import_window: timedelta,
    wait: float | None = None,
) -> list[ControllerReport]:
    """Record events in their order, one report each. Git work happens outside any transaction;
    the events are marked seen in one transaction with what they changed, so a failure before
    that leaves a redelivery to do the work. Each event is planned from what the events before it
    in the batch leave, and writes only what it changes: an object reconciling the revision it
    already runs (most of a storm) costs its row in `controller_events` and its object's state."""
    keys = list(dict.fromkeys(e.key for e in events))
    objects = list(dict.fromkeys(e.object_id for e in events))
    seen, states, failing = store.run(lambda tx: (tx.gitops.seen(keys), tx.gitops.objects_by_id(objects),
                                                  tx.gitops.failing(objects)))
    batch = _Batch(states=states, failing=failing, all_healthy={
        o for o, s in states.items() if s.applied_sha is not None and s.good_sha == s.applied_sha})
    reports: list[ControllerReport] = []
    planned: list[tuple[ControllerEvent, ControllerReport, Write]] = []
    again: list[tuple[ControllerEvent, ControllerReport]] = []  # failures told again: their alerts too
    for ev in events:
        if ev.key in seen:
            reports.append(ControllerReport(duplicate=True))
            if ev.outcome is Outcome.FAILED:
                again.append((ev, reports[-1]))
            continue
        seen.add(ev.key)
        # Once one revision waits for a fetch, the batch waits no longer: the others are recorded when it lands.
        report, write = _plan(store=store, git=git, playbooks=playbooks, repos=repos, event=ev, batch=batch,
                              now=now, import_window=import_window, wait=0.0 if batch.fetching else wait)
        reports.append(report)
        if report.fetching is None:  # one that waits for a fetch is recorded when it lands
            planned.append((ev, report, write))
        else:
            batch.fetching = True
    if planned:
        store.run(lambda tx: _write(tx, planned, batch, now=now))
    if again:
        store.run(lambda tx: _deliver_again(tx, playbooks, again))
    return reports


def _deliver_again(tx: Transaction, playbooks: Sequence[Playbook],
                   again: Sequence[tuple[ControllerEvent, ControllerReport]]) -> None:
    """A failure delivered again (the controller retrying an answer that failed, a held event swept
    after its alert could not be filed) files its alert again while the failure is open: the event
    may have been stored in one transaction and its alert lost before the next. Ingest keeps one."""
    for ev, report in again:
        failure = tx.gitops.open_failure(ev.object_id)
        if failure is not None:
            report.failure = failure
            report.deliveries = [_delivery(p, ev, failure) for p in playbooks
                                 if p.gitops.names(ev) and RECONCILE_FAILED in p.gitops.open_on]


Write = Callable[[Transaction], None]


@dataclass
class _Batch:
    """What the events planned so far leave behind, for the next one."""

    states: dict[str, ObjectState]  # each object's state after them
    failing: set[str]  # objects that may have a failure open
    all_healthy: set[str]  # objects whose applied revisions are all marked healthy
    changed: dict[str, ObjectState] = field(default_factory=dict)  # the states to save
    fetching: bool = False  # a revision of the batch waits for a fetch still running

    def save(self, state: ObjectState) -> None:
        self.states[state.object_id] = self.changed[state.object_id] = state


def _write(tx: Transaction, planned: Sequence[tuple[ControllerEvent, ControllerReport, Write]], batch: _Batch,
           *, now: datetime) -> None:
    new = tx.gitops.record([ev for ev, _, _ in planned], now=now)
    for ev, report, write in planned:
        report.duplicate = ev.key not in new  # another replica recorded it since it was read
        if not report.duplicate:
            write(tx)
    tx.gitops.save_objects(list(batch.changed.values()))


def _plan(*, store: Store, git: GitRepos, playbooks: Sequence[Playbook], repos: Sequence[str],
          event: ControllerEvent, batch: _Batch, now: datetime, import_window: timedelta,
          wait: float | None) -> tuple[ControllerReport, Write]:
    """The event's git work and the write that records what it changed."""
    naming = [p for p in playbooks if p.gitops.names(event)]
    state = batch.states.get(event.object_id)
    report = ControllerReport(drift_repos=[e.repo for p in naming for e in p.repos])
    if event.outcome is Outcome.DRIFTED:  # Git did not move: no revision to look up
        return report, _drifted(event, state, report, naming, now)
    if event.sha is not None:
        try:
            report.repo, report.sha, pending = _locate(
                store=store, git=git, sha=event.sha, now=now, import_window=import_window, wait=wait,
                candidates=_candidates(naming, repos, state))
        except BackoutError as exc:  # the event still counts for failures and recoveries
            report.note = f"could not look up revision {event.sha[:12]}: {exc}"
            pending = {}
        if pending and report.sha is None:
            if wait is not None:  # a fetch still running, or a host known down: held until it lands or answers
                report.fetching = f"revision {event.sha[:12]} is not in the mirror yet: {_listed(pending)}"
                return report, lambda _tx: None
            report.note = f"revision {event.sha[:12]} is not in the mirror: {_listed(pending)}"
        if report.sha is None and not report.note:
            report.note = (f"revision {event.sha[:12]} is in none of the watched repositories "
                           f"({', '.join(_candidates(naming, repos, state)) or 'none configured'})")
    elif event.outcome is not Outcome.OTHER:
        report.note = f"revision {event.revision!r} names no Git commit (a chart version or an OCI digest)"
    if event.outcome is Outcome.APPLIED:
        return report, _applied(git, event, batch, report, naming, now)
    if event.outcome is Outcome.FAILED:
        return report, _failed(git, event, batch, report, naming, now)
    return report, lambda _tx: None


def _candidates(naming: Sequence[Playbook], repos: Sequence[str], state: ObjectState | None) -> list[str]:
    """Where the object's revisions may live: the repository it was seen in, then the GitOps
    repositories of the playbooks that name it, else every watched repository."""
    found = [state.repo] if state is not None and state.repo else []
    found += [e.repo for p in naming for e in p.repos if e.role is RepoRole.GITOPS]
    if not naming:
        found += list(repos)
    return [r for r in dict.fromkeys(found) if r in repos]


def _locate(*, store: Store, git: GitRepos, sha: str, candidates: Sequence[str], now: datetime,
            import_window: timedelta, wait: float | None) -> tuple[str | None, str | None, dict[str, str]]:
    """The repository and full sha of a revision; the controller often sees a commit before
    Backout's next refresh, so an unknown one refreshes the candidates first (waiting at most
    `wait` seconds). Third: the repositories whose mirror may not have it yet, and why (a fetch
    still running, a host not answering)."""
    for repo in candidates:
        full = git.resolve(repo, sha)
        if full:
            return repo, full, {}
    report = refresh_changes(store=store, git=git, repos=candidates, now=now, import_window=import_window,
                             wait=wait)
    for repo in candidates:
        full = git.resolve(repo, sha)
        if full:
            return repo, full, {}
    return None, None, report.pending


def _listed(by_repo: dict[str, str]) -> str:
    return "; ".join(f"{repo}: {why}" for repo, why in by_repo.items())


def _applied(git: GitRepos, ev: ControllerEvent, batch: _Batch, report: ControllerReport,
             naming: Sequence[Playbook], now: datetime) -> Write:
    state = batch.states.get(ev.object_id)
    # A change set at the revision the object already ran: Flux put back an out-of-band edit.
    drift = drift_of(ev, state, naming) if is_drift(ev, state) else None
    repo, sha = report.repo, report.sha
    known = state is not None and state.repo == repo and state.applied_sha is not None
    stale = state is not None and state.applied_at is not None and ev.at < state.applied_at
    # The revision the object already runs, again (a periodic reconciliation): its changes have
    # an earlier time from this object already, which stays.
    again = known and not stale and sha is not None and sha == state.applied_sha  # type: ignore[union-attr]
    applied: list[str] = []
    only_later: list[str] = []
    if repo is not None and sha is not None and not again:
        if known and not stale:
            applied = _range(git, report, repo, new=sha, old=state.applied_sha, limit=RANGE_LIMIT)  # type: ignore[union-attr]
        else:
            # First sight of the object (or a late event): it runs X, so X and every earlier change
            # Backout thought applied after T were applied by T; older ones keep their times.
            history = _range(git, report, repo, new=sha, old=None, limit=RANGE_LIMIT)
            applied, only_later = [sha], history[1:]
    source = AppliedSource.FLUX if ev.controller is Controller.FLUX else AppliedSource.ARGOCD
    healthy = ev.reason not in _PARTIAL
    healthy_at = ev.healthy_at or ev.at
    revisions = [AppliedRevision(object_id=ev.object_id, label=ev.label, repo=repo, sha=s, applied_at=ev.at)
                 for s in applied] if repo is not None else []
    mark_healthy = healthy and not (again and ev.object_id in batch.all_healthy)
    resolve = healthy and ev.object_id in batch.failing
    if mark_healthy and healthy_at >= ev.at:
        batch.all_healthy.add(ev.object_id)
    elif revisions or only_later:
        batch.all_healthy.discard(ev.object_id)
    if not stale:
        previous = state or ObjectState(object_id=ev.object_id, label=ev.label)
        batch.save(previous.model_copy(update={
            "label": ev.label, "repo": repo or previous.repo,
            "applied_sha": sha or previous.applied_sha, "applied_at": ev.at, "path": ev.path or previous.path,
            "good_sha": (sha or previous.good_sha) if healthy else previous.good_sha}))

    def work(tx: Transaction) -> None:
        if drift is not None:
            _note_drift(tx, report, drift, naming, ev, now)
        if repo is not None and (applied or only_later):
            report.applied = tx.changes.set_applied_by(repo, applied, at=ev.at, source=source, by=ev.label,
                                                       only_later=only_later)
            tx.gitops.add_applied(revisions, only_later=only_later)
        if mark_healthy:
            # A healthy object runs healthy everything it applied by then: the rollout is over.
            tx.gitops.set_healthy(ev.object_id, at=healthy_at)
        report.recovered = tx.gitops.resolve_failures(ev.object_id, at=ev.at) if resolve else []
        if report.recovered:
            first = report.recovered[0]
            _note_on_incidents(tx, naming, ev, now, EventKind.RECONCILE_RECOVERED,
                               f"{ev.label} reconciled {_rev(ev, sha)} ({ev.reason}): the failure of "
                               f"{first.revision[:7]} is over")
            report.deliveries = [_delivery(p, ev, first, resolved_at=ev.at) for p in naming
                                 if RECONCILE_FAILED in p.gitops.open_on]

    return work


def _drifted(ev: ControllerEvent, state: ObjectState | None, report: ControllerReport,
             naming: Sequence[Playbook], now: datetime) -> Write:
    drift = drift_of(ev, state, naming)
    return lambda tx: _note_drift(tx, report, drift, naming, ev, now)


def _note_drift(tx: Transaction, report: ControllerReport, drift: Drift, naming: Sequence[Playbook],
                ev: ControllerEvent, now: datetime) -> None:
    report.drift = store_drift(tx, drift)
    if report.drift is not None:
        _note_on_incidents(tx, naming, ev, now, EventKind.DRIFT_DETECTED,
                           f"{report.drift.describe()} ({report.drift.handle}, reported by {ev.label})")


def _failed(git: GitRepos, ev: ControllerEvent, batch: _Batch, report: ControllerReport,
            naming: Sequence[Playbook], now: datetime) -> Write:
    state = batch.states.get(ev.object_id)
    repo, sha = report.repo, report.sha
    shas: list[str] = []
    if repo is not None and sha is not None:
        good = state.good_sha if state is not None and state.repo == repo else None
        shas = _range(git, report, repo, new=sha, old=good, limit=50) if good else [sha]
        shas = shas or [sha]  # applied, then unhealthy at the same revision: that revision
    failure = Failure(object_id=ev.object_id, label=ev.label, repo=repo, revision=sha or ev.revision,
                      shas=tuple(shas), reason=ev.reason, message=ev.message[:4000], at=ev.at)
    if state is None or state.repo is None:
        batch.save((state or ObjectState(object_id=ev.object_id, label=ev.label)).model_copy(
            update={"label": ev.label, "repo": repo}))
    batch.failing.add(ev.object_id)

    def work(tx: Transaction) -> None:
        current = tx.gitops.open_failure(ev.object_id)
        if current is not None and current.revision == failure.revision:
            report.failure = current  # the same failure again (a retry, another message)
        else:
            report.failure = tx.gitops.add_failure(failure)
            _note_on_incidents(tx, naming, ev, now, EventKind.RECONCILE_FAILED, failure.describe())
        first = current if current is not None else report.failure
        report.deliveries = [_delivery(p, ev, first) for p in naming if RECONCILE_FAILED in p.gitops.open_on]

    return work


def _range(git: GitRepos, report: ControllerReport, repo: str, *, new: str, old: str | None,
           limit: int) -> list[str]:
    """The first-parent range, or just `new` when git cannot say (the event still counts)."""
    try:
        return git.first_parent(repo, new=new, old=old, limit=limit) or [new]
    except BackoutError as exc:
        report.note = f"could not read the history before {new[:12]}: {exc}"
        return [new]


# Flux reports the change set it applied as `Progressing` before the health checks: applied, not
# yet known to be healthy.
_PARTIAL = frozenset({"Progressing"})


def _rev(ev: ControllerEvent, sha: str | None) -> str:
    return sha[:7] if sha else (ev.revision or "its revision")


def _note_on_incidents(tx: Transaction, naming: Sequence[Playbook], ev: ControllerEvent, now: datetime,
                       kind: EventKind, text: str) -> None:
    """The active incidents of the playbooks that name the object hear of it on their timeline."""
    for playbook in naming:
        incident = tx.incidents.latest_of_playbook(playbook.name, playbook.service)
        if incident is None or incident.id is None or not incident.active:
            continue
        tx.timeline.append(event(incident_id=incident.id, at=now, kind=kind, actor=Actor.CONTROLLER,
                                 actor_id=ev.object_id, text=text,
                                 data={"object": ev.object_id, "reason": ev.reason, "revision": ev.revision}))


def _delivery(playbook: Playbook, ev: ControllerEvent, failure: Failure,
              resolved_at: datetime | None = None) -> Delivery:
    """The failed reconciliation as an alert of the playbook: one per object, starting at its
    first open failure, so further failures join it and the next success resolves it."""
    fingerprint = hashlib.sha256(f"{playbook.name}\x1f{failure.object_id}".encode()).hexdigest()[:16]
    status = AlertStatus.RESOLVED if resolved_at is not None else AlertStatus.FIRING
    alert = ReceivedAlert(
        fingerprint=fingerprint, starts_at=failure.at, ends_at=resolved_at, status=status,
        labels={"alertname": "ReconcileFailed", "service": playbook.service, "severity": playbook.severity,
                "controller": ev.controller.value, "object": failure.object_id, PLAYBOOK_LABEL: playbook.name},
        annotations={"summary": f"{failure.label} failed to apply {failure.revision[:12]} ({failure.reason})",
                     "description": failure.message[:2000]},
        source=ev.controller.value,
    )
    return Delivery(group_key=f"{ev.controller.value}:{failure.object_id}", status=status, alerts=(alert,))


def describe(report: ControllerReport) -> str:
    """One line for the webhook's answer and the log."""
    if report.duplicate:
        return "seen before"
    parts = []
    if report.applied:
        parts.append(f"{report.applied} change{'s' * (report.applied != 1)} applied")
    if report.failure is not None:
        parts.append(f"failure of {report.failure.revision[:12]} recorded")
    if report.recovered:
        parts.append("recovered")
    if report.drift is not None:
        parts.append(f"{report.drift.handle}: {report.drift.describe()}")
    if report.note:
        parts.append(report.note)
    return "; ".join(parts) or "recorded"

