"""GitOps controllers first-hand: what Flux and Argo CD report applying, or failing to apply. Pure."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.drift import DriftedResource


class Controller(StrEnum):
    FLUX = "flux"
    ARGOCD = "argocd"


class Outcome(StrEnum):
    APPLIED = "applied"  # the object reconciled this revision: it is what runs now
    FAILED = "failed"  # the revision did not reconcile, or it did and the result is unhealthy
    OTHER = "other"  # anything else the controller says (kept, changes nothing)
    DRIFTED = "drifted"  # the live objects left Git's state with no new revision (an out-of-band change)


# What Flux's controllers send (kustomize-controller, helm-controller; fluxcd/pkg's meta reasons).
FLUX_APPLIED_REASONS = frozenset({
    "ReconciliationSucceeded", "Progressing", "InstallSucceeded", "UpgradeSucceeded",
})
FLUX_FAILED_REASONS = frozenset({
    "ReconciliationFailed", "ValidationFailed", "BuildFailed", "HealthCheckFailed", "DependencyNotReady",
    "ArtifactFailed", "PruneFailed", "InstallFailed", "UpgradeFailed", "TestFailed", "RollbackFailed",
    "UninstallFailed", "ChartPullFailed", "ChartLoadFailed", "GetLastReleaseFailed",
})
# helm-controller's drift detection (`spec.driftDetection`): detected (a warning, so severity error),
# corrected, or a correction that failed.
FLUX_DRIFT_REASONS = frozenset({"DriftDetected", "DriftCorrected", "DriftCorrectionFailed"})

_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def parse_revision(text: str) -> str | None:
    """The Git commit a controller's revision names, or None (a chart version, an OCI digest).

    Flux writes `main@sha1:<sha>` (current), `main/<sha>` (older) or `sha1:<sha>`; a Helm chart
    built from Git with `reconcileStrategy: Revision` is `<version>+<sha prefix>`; Argo CD sends
    the bare sha."""
    text = text.strip()
    if "@sha1:" in text or text.startswith("sha1:"):
        candidate = text.rsplit("sha1:", 1)[1]
    elif "@sha256:" in text or text.startswith("sha256:"):
        return None  # an OCI artifact digest, not a Git commit
    elif "+" in text:
        candidate = text.rsplit("+", 1)[1]
    elif "/" in text:
        candidate = text.rsplit("/", 1)[1]
    else:
        candidate = text
    candidate = candidate.lower()
    return candidate if _SHA.fullmatch(candidate) else None


class ControllerEvent(BaseModel):
    """One event from a GitOps controller about one object it reconciles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    controller: Controller
    kind: str  # Kustomization, HelmRelease, Application
    namespace: str
    name: str
    outcome: Outcome
    reason: str
    message: str = ""
    revision: str = ""  # as the controller wrote it
    sha: str | None = None  # the Git commit (full or a prefix), when the revision names one
    at: datetime  # for an applied revision: when the rollout started
    healthy_at: datetime | None = None  # when the object was healthy at the revision, if the event says
    path: str | None = None  # the folder the object deploys from, when the event carries it (Argo CD)
    # Drift: the objects it names (a Flux change set at the revision already applied is one too),
    # whether the controller put them back, and the last clean reconcile when the event says.
    resources: tuple[DriftedResource, ...] = ()
    corrected: bool = False
    correction: str = ""
    since: datetime | None = None

    @property
    def object_id(self) -> str:
        return f"{self.controller.value}:{self.kind}/{self.namespace}/{self.name}"

    @property
    def label(self) -> str:
        """`Flux Kustomization flux-system/apps`, `Argo CD Application argocd/checkout`."""
        who = "Flux" if self.controller is Controller.FLUX else "Argo CD"
        return f"{who} {self.kind} {self.namespace}/{self.name}"

    @cached_property
    def key(self) -> str:
        """Identity for redelivery: the same object, outcome, revision, time and message. Kept once
        made: a batch asks for it five times an event, and the message may be long."""
        raw = "\x1f".join([self.object_id, self.outcome.value, self.reason, self.revision,
                           self.at.isoformat(), self.message])
        return hashlib.sha256(raw.encode()).hexdigest()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy that makes its own key: pydantic would carry the kept one over, and an update may
        change what the key is made of."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("key", None)
        return copied


class FluxObject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["Kustomization", "HelmRelease"] = "Kustomization"
    namespace: str = Field(default="flux-system", min_length=1, max_length=253)
    name: str = Field(min_length=1, max_length=253)


class ArgoApp(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    app: str = Field(min_length=1, max_length=253)
    namespace: str | None = None  # the Application's namespace; any when not given


class GitOpsPolicy(BaseModel):
    """Which controller objects deploy a playbook's service, and what opens an incident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flux: tuple[FluxObject, ...] = ()
    argocd: tuple[ArgoApp, ...] = ()
    open_on: tuple[Literal["reconcile_failed"], ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.flux or self.argocd)

    def names(self, event: ControllerEvent) -> bool:
        if event.controller is Controller.FLUX:
            return any(o.kind == event.kind and o.namespace == event.namespace and o.name == event.name
                       for o in self.flux)
        return any(a.app == event.name and a.namespace in (None, event.namespace) for a in self.argocd)

    def names_object(self, object_id: str) -> bool:
        controller, _, rest = object_id.partition(":")
        kind, namespace, name = [*rest.split("/", 2), "", ""][:3]
        if controller == Controller.FLUX.value:
            return any((o.kind, o.namespace, o.name) == (kind, namespace, name) for o in self.flux)
        return controller == Controller.ARGOCD.value and any(
            a.app == name and a.namespace in (None, namespace) for a in self.argocd)


class ObjectState(BaseModel):
    """What Backout knows of one controller object: the revision it last applied and whether its
    latest reconciliation failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object_id: str
    label: str
    repo: str | None = None
    applied_sha: str | None = None
    applied_at: datetime | None = None
    good_sha: str | None = None  # the last revision that reconciled fully (healthy)
    path: str | None = None  # the folder it deploys from, when an event said (Argo CD's source path)


class AppliedRevision(BaseModel):
    """When one object applied one change (the rollout's start), and when it was healthy after."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object_id: str
    label: str
    repo: str
    sha: str
    applied_at: datetime
    healthy_at: datetime | None = None


def path_holds(path: str, globs: Sequence[str]) -> bool:
    """Whether an object deploying from `path` deploys what one of the globs names: the glob's
    fixed part lies in that folder (`apps` holds `apps/checkout/**`; the root holds everything)."""
    folder = path.strip().removeprefix("./").strip("/")
    if folder in ("", "."):
        return bool(globs)
    for pattern in globs:
        fixed = re.split(r"[*?\[]", pattern.lstrip("/"), maxsplit=1)[0]
        if fixed == folder or fixed.startswith(folder + "/"):
            return True
    return False


class Failure(BaseModel):
    """A revision an object failed to apply (or applied and then failed its health check)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int | None = None
    object_id: str
    label: str
    repo: str | None
    revision: str  # the sha (or the controller's revision text when it names no commit)
    shas: tuple[str, ...] = ()  # the changes since the last good revision, newest first
    reason: str
    message: str = ""
    at: datetime
    resolved_at: datetime | None = None

    def describe(self) -> str:
        message = " ".join(self.message.split())
        message = message if len(message) <= 200 else message[:199] + "…"
        return (f"revision {self.revision[:7]} failed to apply ({self.label}, {self.reason} at "
                f"{self.at:%H:%M:%S} UTC)" + (f": {message}" if message else ""))


class ImageBuild(BaseModel):
    """Which application commit an image tag was built from, as a CI job reported it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(min_length=1, max_length=500)
    tag: str = Field(min_length=1, max_length=200, pattern=r"^[\w][\w.+-]{0,199}$")
    repo: str = Field(min_length=1, max_length=100)
    sha: str = Field(pattern=r"^[0-9a-f]{7,64}$")
    at: datetime | None = None
