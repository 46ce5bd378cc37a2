"""The drift families of the ranking benchmark: out-of-band changes laid over the generated histories.

`drift`: the culprit is a live edit no commit made (replicas scaled down, an image swapped, an
environment value changed), seen by Flux or Argo CD minutes later; as it goes in the field, Flux
corrects it at its next reconcile (here after the incident started, or not yet known when Backout
ranks), Argo CD without auto-sync leaves it, helm-controller in warn mode only reports it.
`drift_corrected_before`: a live edit Flux put back minutes before an unrelated culprit commit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.drift import Drift, DriftedResource, FieldDrift

FAMILIES = {"drift": "culprit", "drift_corrected_before": "culprit"}


@dataclass
class DriftSpec:
    """Minutes from the incident's start (negative: before it)."""

    since: float  # the last clean reconcile before the edit
    detected: float
    corrected: float | None
    how: str  # replicas, image or env
    source: str  # flux, argocd or helm


def culprit_drift(rng: random.Random, edit_at: float) -> DriftSpec:
    """A live edit at `edit_at` that causes the incident; detected within the controller's interval."""
    source = rng.choice(["flux", "argocd", "helm"])
    detected = min(edit_at + (rng.uniform(0.5, 3) if source == "argocd" else rng.uniform(0.5, 10)), 2.5)
    # Flux puts it back when it detects it (a Kustomization reconcile); the others leave it.
    corrected = detected if source == "flux" else None
    if corrected is not None and corrected < 0:
        # Corrected before the incident began, it would have ended the problem: here Flux's next
        # reconcile comes after the start (a 10-minute interval often does), before the bench ranks
        # (3 minutes after the start; the server ranks again when the event arrives).
        detected = corrected = rng.uniform(0.5, 2.5)
    return DriftSpec(since=edit_at - rng.uniform(0.5, 10), detected=detected, corrected=corrected,
                     how=rng.choice(["replicas", "image", "env"]), source=source)


def corrected_drift(rng: random.Random, commit_at: float) -> DriftSpec:
    """A live edit Flux put back a few minutes before the culprit commit was applied."""
    fixed = commit_at - rng.uniform(1, 6)
    edit = fixed - rng.uniform(3, 15)
    return DriftSpec(since=edit - rng.uniform(0.5, 10), detected=fixed, corrected=fixed,
                     how=rng.choice(["replicas", "image", "env"]), source="flux")


def stored_drift(spec: DriftSpec, *, number: int, world: str, service: str, started_at: datetime,
                 now: datetime) -> Drift | None:
    """The drift as Backout would hold it at `now` (detected later: not known yet; a correction
    later: not yet corrected)."""
    def at(minutes: float) -> datetime:
        return started_at + timedelta(minutes=minutes)

    if at(spec.detected) > now:
        return None
    fields = {"replicas": FieldDrift(path="spec.replicas", wanted="4", live="1"),
              "image": FieldDrift(path="spec.template.spec.containers[0].image",
                                  wanted=f"registry.example.com/{service}:1.4.2",
                                  live=f"registry.example.com/{service}:debug"),
              "env": FieldDrift(path="spec.template.spec.containers[0].env[2].value", wanted="100", live="5")}
    kind, name = ("HelmRelease", service) if spec.source == "helm" else (
        ("Application", service) if spec.source == "argocd" else ("Kustomization", f"{world}-apps"))
    controller = "argocd" if spec.source == "argocd" else "flux"
    label = f"{'Argo CD' if controller == 'argocd' else 'Flux'} {kind} {world}/{name}"
    corrected = at(spec.corrected) if spec.corrected is not None and at(spec.corrected) <= now else None
    return Drift(key=f"bench-{number}", object_id=f"{controller}:{kind}/{world}/{name}", label=label,
                 controller=controller, resources=(DriftedResource(kind="Deployment", namespace=service, name=service,
                                                                    fields=(fields[spec.how],)),),
                 services=(service,), playbooks=(f"{world}-{service}",), since=at(spec.since),
                 detected_at=at(spec.detected), corrected_at=corrected,
                 correction=f"corrected by Flux at {corrected:%H:%M} UTC" if corrected else "",
                 sync=None if corrected else "sync from Git")
