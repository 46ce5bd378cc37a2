"""Flux and Argo CD notification bodies, parsed into controller events.

Flux posts its own `Event` (fluxcd/pkg apis/event/v1; the example is in notification-controller's
docs/spec/v1beta3/events.md). Argo CD posts what its template says: Backout ships the template
(`deploy/argocd/notifications.yaml`) and parses exactly its output."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.domain.drift import DriftedResource, parse_change_set
from bot.domain.gitops import (
    FLUX_APPLIED_REASONS,
    FLUX_DRIFT_REASONS,
    FLUX_FAILED_REASONS,
    Controller,
    ControllerEvent,
    ImageBuild,
    Outcome,
    parse_revision,
)
from bot.domain.untrusted import Instant, StoredText

# Every text field is StoredText and every time an Instant: what a controller sends is untrusted.
_NAME = Annotated[StoredText, Field(min_length=1, max_length=253)]


class FluxObjectRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: _NAME
    name: _NAME
    namespace: StoredText = Field(default="", max_length=253)
    apiVersion: StoredText = Field(default="", max_length=253)  # noqa: N815 - Flux's field name


class FluxEvent(BaseModel):
    """The fields of Flux's event that Backout reads; others are ignored (Flux adds fields)."""

    model_config = ConfigDict(extra="ignore")

    involvedObject: FluxObjectRef  # noqa: N815
    relatedObject: FluxObjectRef | None = None  # noqa: N815
    severity: Literal["info", "error", "trace"]
    timestamp: Instant
    message: StoredText = Field(default="", max_length=65_536)
    reason: StoredText = Field(min_length=1, max_length=200)
    action: StoredText | None = Field(default=None, max_length=200)
    metadata: dict[StoredText, StoredText] = Field(default_factory=dict, max_length=200)
    reportingController: StoredText = Field(min_length=1, max_length=253)  # noqa: N815
    reportingInstance: StoredText | None = Field(default=None, max_length=253)  # noqa: N815

    def revision(self) -> str:
        """The revision under the controller's API group (`kustomize.toolkit.fluxcd.io/revision`)."""
        group = self.involvedObject.apiVersion.split("/", 1)[0]
        if group and f"{group}/revision" in self.metadata:
            return self.metadata[f"{group}/revision"]
        return next((v for k, v in self.metadata.items() if k.endswith(".fluxcd.io/revision")), "")

    def to_event(self) -> ControllerEvent:
        resources: list[DriftedResource] = []
        if self.reason in FLUX_DRIFT_REASONS:
            # Before the severity: helm-controller reports drift as a warning, which Flux sends as error.
            outcome = Outcome.DRIFTED
            resources = parse_change_set(self.message, verbs=("changed", "removed", "configured", "created"))
        elif self.severity == "error" or self.reason in FLUX_FAILED_REASONS:
            outcome = Outcome.FAILED
        elif self.severity == "info" and self.reason in FLUX_APPLIED_REASONS:
            outcome = Outcome.APPLIED
            # A change set; at the revision the object already runs, it put back an out-of-band edit.
            resources = parse_change_set(self.message)
        else:
            outcome = Outcome.OTHER
        revision = self.revision()
        corrected = self.reason == "DriftCorrected"
        return ControllerEvent(
            controller=Controller.FLUX, kind=self.involvedObject.kind, namespace=self.involvedObject.namespace,
            name=self.involvedObject.name, outcome=outcome, reason=self.reason, message=self.message,
            revision=revision[:300], sha=parse_revision(revision), at=self.timestamp,
            resources=tuple(resources[:50]), corrected=corrected,
            correction=f"corrected by Flux at {self.timestamp:%H:%M} UTC" if corrected else "")


def _blank(value: Any) -> Any:
    """Go templates print a missing field as `<no value>`: the same as absent."""
    return None if value in ("", "<no value>", "null") else value


Blank = BeforeValidator(_blank)


class ArgoResource(BaseModel):
    """One entry of an Application's `status.resources`: a live object and its sync status."""

    model_config = ConfigDict(extra="ignore")

    kind: _NAME
    name: _NAME
    namespace: Annotated[StoredText | None, Blank] = Field(default=None, max_length=253)
    group: Annotated[StoredText | None, Blank] = Field(default=None, max_length=253)
    status: Annotated[StoredText | None, Blank] = Field(default=None, max_length=100)  # Synced, OutOfSync


class ArgoAutoSync(BaseModel):
    """`spec.syncPolicy.automated`: present means auto-sync; `selfHeal` syncs back live edits."""

    model_config = ConfigDict(extra="ignore")

    selfHeal: bool | None = None  # noqa: N815 - Argo CD's field name


class ArgoNotification(BaseModel):
    """The body of Backout's Argo CD notification templates."""

    model_config = ConfigDict(extra="ignore")

    event: Literal["deployed", "sync-failed", "health-degraded", "drifted"]
    app: _NAME
    namespace: Annotated[StoredText | None, Blank] = Field(default=None, max_length=253)
    revision: Annotated[StoredText | None, Blank] = Field(default=None, max_length=300)
    sync_revision: Annotated[StoredText | None, Blank] = Field(default=None, max_length=300)
    repo_url: Annotated[StoredText | None, Blank] = Field(default=None, max_length=2000)
    sync_status: Annotated[StoredText | None, Blank] = Field(default=None, max_length=100)
    health_status: Annotated[StoredText | None, Blank] = Field(default=None, max_length=100)
    phase: Annotated[StoredText | None, Blank] = Field(default=None, max_length=100)
    message: Annotated[StoredText | None, Blank] = Field(default=None, max_length=65_536)
    finished_at: Annotated[Instant | None, Blank] = None
    started_at: Annotated[Instant | None, Blank] = None  # the sync operation's start: the rollout's
    healthy_at: Annotated[Instant | None, Blank] = None  # the app's health lastTransitionTime
    path: Annotated[StoredText | None, Blank] = Field(default=None, max_length=1000)  # spec.source.path
    # `drifted` only: when Argo CD compared last (detection), its auto-sync, the objects it shows
    reconciled_at: Annotated[Instant | None, Blank] = None
    auto_sync: Annotated[ArgoAutoSync | None, Blank] = None
    resources: Annotated[list[ArgoResource] | None, Blank] = Field(default=None, max_length=2000)

    def to_event(self, *, now: datetime) -> ControllerEvent:
        if self.event == "drifted":
            return self._drift(now)
        outcome = Outcome.APPLIED if self.event == "deployed" else Outcome.FAILED
        # A sync names the revision it ran; degraded health names the one the app is synced to.
        revision = (self.revision or self.sync_revision or "") if self.event != "health-degraded" else (
            self.sync_revision or self.revision or "")
        reason = {"deployed": "Deployed", "sync-failed": "SyncFailed", "health-degraded": "HealthDegraded"}[self.event]
        details = [f"sync {self.phase}" if self.phase else "",
                   f"health {self.health_status}" if self.health_status else ""]
        message = (self.message or "").strip() or ", ".join(d for d in details if d)
        # Degraded health has no time of its own in the app's status: the notification's is it.
        at = self.finished_at if self.finished_at is not None and self.event != "health-degraded" else now
        healthy_at = None
        if self.event == "deployed":
            # The rollout started with the sync, not when it finished: it may hurt before it is
            # healthy. `deployed` fires once the app is Healthy: its transition time, else now.
            at = self.started_at or at
            healthy_at = max(self.healthy_at or now, at)
        return ControllerEvent(
            controller=Controller.ARGOCD, kind="Application", namespace=self.namespace or "argocd",
            name=self.app, outcome=outcome, reason=reason, message=message, revision=revision,
            sha=parse_revision(revision), at=at, healthy_at=healthy_at, path=self.path)


    def _drift(self, now: datetime) -> ControllerEvent:
        """OutOfSync at the revision it last synced: the cluster moved, not Git. (OutOfSync after a new
        commit is no drift: the sync revision differs; the trigger checks it, and so does this.)"""
        same = bool(self.revision) and self.revision == self.sync_revision
        drifted = tuple(DriftedResource(kind=r.kind, namespace=r.namespace or "", name=r.name)
                        for r in (self.resources or []) if r.status == "OutOfSync")[:50]
        if self.auto_sync is None:
            correction = "not corrected: Argo CD auto-sync is off"
        elif not self.auto_sync.selfHeal:
            correction = "not corrected: Argo CD self-heal is off"
        else:
            correction = "Argo CD self-heal syncs it back"
        revision = self.revision or ""
        return ControllerEvent(
            controller=Controller.ARGOCD, kind="Application", namespace=self.namespace or "argocd",
            name=self.app, outcome=Outcome.DRIFTED if same else Outcome.OTHER, reason="OutOfSync",
            message=(self.message or "").strip(), revision=revision, sha=parse_revision(revision),
            at=self.reconciled_at or now, path=self.path, resources=drifted, correction=correction,
            since=self.finished_at)


class BuildNotice(BaseModel):
    """`POST /webhooks/build`: a CI job says which commit an image tag was built from."""

    model_config = ConfigDict(extra="forbid")

    image: StoredText = Field(min_length=1, max_length=500, pattern=r"^[\w./:@-]+$")
    tag: StoredText = Field(min_length=1, max_length=128, pattern=r"^[\w][\w.+-]*$")
    repo: StoredText = Field(min_length=1, max_length=100)
    sha: StoredText = Field(pattern=r"^[0-9a-fA-F]{7,64}$")
    at: Instant | None = None

    @field_validator("image")
    @classmethod
    def _no_tag(cls, value: str) -> str:
        name = value.rsplit("/", 1)[-1]
        return value.rsplit(":", 1)[0] if ":" in name else value

    def to_build(self) -> ImageBuild:
        return ImageBuild(image=self.image, tag=self.tag, repo=self.repo, sha=self.sha.lower(),
                          at=self.at)
