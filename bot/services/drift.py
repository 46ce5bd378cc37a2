"""Out-of-band changes: controller events that say the cluster moved while Git did not, stored as
drift with its window, the objects and fields it touched and the way back to Git.

Flux: a HelmRelease's drift detection (DriftDetected, then DriftCorrected when its mode corrects),
and a Kustomization whose change set at the revision it already ran "configured" objects (Flux put
them back: corrected at that event). Argo CD: an Application OutOfSync at the revision it last
synced, with the fields from its managed-resources diff where Backout has an Argo CD API token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.domain.drift import DRIFT_PREFIX, Drift, DriftAction
from bot.domain.errors import BackoutError, Conflict, InvalidInput, NotFound
from bot.domain.gitops import Controller, ControllerEvent, ObjectState, Outcome
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook
from bot.domain.ports import ArgoCdApi, Store, Transaction
from bot.domain.suspects import Suspect
from bot.domain.timeline import EventKind, event

log = structlog.get_logger(__name__)


def is_drift(event: ControllerEvent, state: ObjectState | None) -> bool:
    """A drift event, or a Flux change set at the revision the object already ran (and ran before
    this event: a late or first event proves nothing)."""
    if event.outcome is Outcome.DRIFTED:
        return True
    return (event.controller is Controller.FLUX and event.outcome is Outcome.APPLIED and bool(event.resources)
            and state is not None and state.applied_sha is not None and event.sha is not None
            and state.applied_sha.startswith(event.sha) and state.applied_at is not None
            and event.at > state.applied_at)


def with_fields(event: ControllerEvent, argo: ArgoCdApi | None) -> ControllerEvent:
    """An Argo CD drift with the fields its managed-resources diff gives (outside any transaction,
    bounded by the adapter); the notification's objects alone when the API is not configured or fails."""
    if argo is None or event.controller is not Controller.ARGOCD or event.outcome is not Outcome.DRIFTED:
        return event
    try:
        found = argo.drifted(event.name, namespace=event.namespace)
    except BackoutError as exc:
        log.warning("drift.argocd_diff_failed", app=event.name, error=str(exc))
        return event
    return event.model_copy(update={"resources": tuple(found[:50])}) if found else event


def drift_of(event: ControllerEvent, state: ObjectState | None, naming: Sequence[Playbook]) -> Drift:
    """The drift an event reports; its window starts at the last clean reconcile Backout knows."""
    corrected = event.corrected or event.outcome is Outcome.APPLIED
    correction = event.correction or (f"corrected by Flux at {event.at:%H:%M} UTC" if corrected else "")
    since = event.since or (state.applied_at if state is not None else None)
    return Drift(
        key=event.key, object_id=event.object_id, label=event.label, controller=event.controller.value,
        revision=event.revision, resources=event.resources,
        services=tuple(dict.fromkeys(p.service for p in naming)), playbooks=tuple(p.name for p in naming),
        since=since if since is not None and since <= event.at else None, detected_at=event.at,
        corrected_at=event.at if corrected else None, correction=correction,
        sync=None if corrected else sync_command(event), message=event.message[:4000])


def sync_command(event: ControllerEvent) -> str:
    """How to put Git's state back: the command to run (Backout never syncs by itself)."""
    if event.controller is Controller.ARGOCD:
        where = "" if event.namespace in ("", "argocd") else f" --app-namespace {event.namespace}"
        return f"argocd app sync {event.name}{where}"
    if event.kind == "HelmRelease":
        return f"flux reconcile helmrelease {event.name} -n {event.namespace} --force"
    return f"flux reconcile kustomization {event.name} -n {event.namespace} --with-source"


def store_drift(tx: Transaction, drift: Drift) -> Drift | None:
    """Store it; a correction closes the object's open drift instead (helm-controller reports the
    detection, then the correction). None when nothing new was stored."""
    if drift.corrected_at is not None:
        current = tx.drifts.open_for(drift.object_id)
        if current is not None and current.id is not None and current.detected_at <= drift.detected_at:
            tx.drifts.correct(current.id, at=drift.corrected_at, correction=drift.correction)
            merged = current.resources if current.resources else drift.resources
            return current.model_copy(update={"corrected_at": drift.corrected_at, "correction": drift.correction,
                                              "sync": None, "resources": merged})
    return tx.drifts.add(drift)


def recent_drift(*, store: Store, now: datetime, within: timedelta, service: str | None = None,
                 limit: int = 200) -> list[Drift]:
    """Drift detected within `within` before `now`, newest first; of one service when given."""
    found = store.run(lambda tx: tx.drifts.between(since=now - within, until=now, limit=limit))
    return [d for d in found if service is None or service in d.services]


def drift_dict(drift: Drift) -> dict[str, Any]:
    """One drift as the API and `backout drift --json` show it."""
    return {"id": drift.handle, "description": drift.describe(), "source": drift.label, "object": drift.object_id,
            "controller": drift.controller, "revision": drift.revision, "services": list(drift.services),
            "since": _iso(drift.since), "detected_at": _iso(drift.detected_at),
            "corrected_at": _iso(drift.corrected_at), "correction": drift.correction, "sync": drift.sync,
            "resources": [{"kind": r.kind, "namespace": r.namespace, "name": r.name, "how": r.how,
                           "fields": [f.model_dump() for f in r.fields]} for r in drift.resources]}


def drift_report(*, store: Store, now: datetime, within: timedelta, service: str | None = None) -> dict[str, Any]:
    """`GET /api/drift`: recent drift, newest first."""
    found = recent_drift(store=store, now=now, within=within, service=service)
    return {"since": _iso(now - within), "service": service, "drift": [drift_dict(d) for d in found]}


def suspect_drift(suspect: Suspect) -> dict[str, Any] | None:
    """A suspect that is a drift, as the API and the export show it: its window, what became of it
    and the action offered (never a revert); None for a commit."""
    drift = suspect.drift
    if drift is None:
        return None
    return {"id": suspect.sha, "source": drift.source, "since": _iso(drift.since),
            "detected_at": _iso(drift.detected_at), "corrected_at": _iso(drift.corrected_at),
            "correction": drift.correction or None, "action": drift.offered()}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def drift_near(tx: Transaction, playbook: Playbook, *, since: datetime, until: datetime) -> list[Drift]:
    """The drift of the objects the playbook names, detected in [since, until]."""
    return [d for d in tx.drifts.between(since=since, until=until)
            if playbook.name in d.playbooks or playbook.gitops.names_object(d.object_id)]


def refuse_revert(tx: Transaction, handle: str, action: DriftAction | None = None) -> Conflict:
    """The refusal to revert a drift, with what to do instead (a sync from Git, or nothing)."""
    drift = tx.drifts.get(drift_id(handle))
    if drift is not None:
        action = DriftAction(id=drift.id or 0, source=drift.label, since=drift.since, detected_at=drift.detected_at,
                             corrected_at=drift.corrected_at, correction=drift.correction, sync=drift.sync)
    what = f" ({drift.describe()})" if drift is not None else ""
    instead = action.offered() if action is not None else "sync its object from Git"
    if drift is not None and drift.controller == "argocd" and drift.corrected_at is None:
        instead += f" (or `backout drift sync {drift.handle}`, through Argo CD's API where argocd.api_url is set)"
    return Conflict(f"{handle} is an out-of-band change{what}, not a commit: there is nothing in Git to "
                    f"revert. Instead, {instead}")


def drift_id(handle: str) -> int:
    """`drift-12` (or `12`) as its id; InvalidInput otherwise."""
    number = handle.lower().removeprefix(DRIFT_PREFIX)
    if not number.isdigit() or len(number) > 12:
        raise InvalidInput(f"not a drift: {handle[:40]!r} (expected drift-<n>, as `backout drift` lists them)")
    return int(number)


def sync_drift(*, store: Store, argo: ArgoCdApi | None, playbooks: Sequence[Playbook], handle: str,
               actor_id: str, now: datetime) -> dict[str, Any]:
    """Sync a drift's Argo CD Application from Git through Argo CD's API, recorded on the timeline of
    the active incidents of its playbooks. Where Backout cannot (a Flux object: Backout has no
    access to the cluster; Argo CD without `argocd.api_url`), a Conflict that gives the command;
    nothing to do once the controller corrected it."""
    number = drift_id(handle)
    drift = store.run(lambda tx: tx.drifts.get(number))
    if drift is None:
        raise NotFound(f"no drift {DRIFT_PREFIX}{number}; `backout drift` lists them")
    if drift.corrected_at is not None:
        raise Conflict(f"{drift.handle} needs no sync: {drift.correction or 'already corrected'}")
    command = drift.sync or "sync its object from Git"
    if drift.controller != "argocd":
        raise Conflict(f"{drift.handle}: Backout does not reach the cluster to sync a Flux object; run "
                       f"`{command}`")
    if argo is None:
        raise Conflict(f"{drift.handle}: no Argo CD API configured (argocd.api_url, argocd.api_token_file); "
                       f"run `{command}`")
    _, _, rest = drift.object_id.partition(":")
    _, namespace, app = [*rest.split("/", 2), "", ""][:3]
    phase = argo.sync(app, namespace=namespace)
    text = f"Sync from Git of {drift.handle} ({drift.label}) requested through Argo CD's API: {phase}"
    store.run(lambda tx: _note_sync(tx, drift, playbooks, actor_id=actor_id, now=now, text=text))
    log.info("drift.synced", drift=drift.handle, app=app, phase=phase)
    return {"drift": drift.handle, "synced": True, "phase": phase, "detail": text}


def _note_sync(tx: Transaction, drift: Drift, playbooks: Sequence[Playbook], *, actor_id: str, now: datetime,
               text: str) -> None:
    for playbook in playbooks:
        if playbook.name not in drift.playbooks:
            continue
        incident = tx.incidents.latest_of_playbook(playbook.name, playbook.service)
        if incident is not None and incident.id is not None and incident.active:
            tx.timeline.append(event(incident_id=incident.id, at=now, kind=EventKind.DRIFT_SYNCED, actor=Actor.USER,
                                     actor_id=actor_id, text=text, data={"drift": drift.handle}))
