"""Out-of-band changes (drift): what a GitOps controller saw change in the cluster with no commit. Pure.

A `kubectl edit`, a scaled deployment, a patched secret: the controller's object still runs the
revision it ran, yet the live objects differ from Git. Flux reports it (a HelmRelease's drift
detection, a Kustomization that reconciled its own revision and "configured" objects); Argo CD
shows it (an Application OutOfSync at the revision it last synced). A drift is a suspect like a
commit, timed by a window (the last clean reconcile to its detection), and never reverted in Git:
its action is a sync from Git, or nothing when the controller already corrected it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.changes import Effect

DRIFT_PREFIX = "drift-"  # a drift's handle where a commit's sha would be: `drift-12`
_VERBS = ("configured", "created", "deleted")  # what Flux's change set says of an object it changed
# `Deployment/checkout/api configured`, `ClusterRole/viewer created`
_CHANGE_LINE = re.compile(
    r"^\s*([\w.-]+)/(?:([\w.-]+)/)?([\w.:-]+)\s+(configured|created|deleted|changed|removed)\b(.*)$")
_SCALE_FIELDS = re.compile(r"(^|\.)(replicas|resources|limits|requests|cpu|memory)(\.|\[|$)")
_IMAGE_FIELDS = re.compile(r"(^|\.)image(\.|$)")


class FieldDrift(BaseModel):
    """One field whose live value differs from Git's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(max_length=300)  # spec.replicas, spec.template.spec.containers[0].image
    wanted: str = Field(default="", max_length=200)  # Git's value, shown
    live: str = Field(default="", max_length=200)  # the cluster's

    def describe(self) -> str:
        return f"{self.path} {self.wanted or '(unset)'} -> {self.live or '(unset)'}"


class DriftedResource(BaseModel):
    """A live object that left its desired state, and how, where the source says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(max_length=253)
    namespace: str = Field(default="", max_length=253)
    name: str = Field(max_length=253)
    how: str = Field(default="changed", max_length=40)  # changed, removed (deleted live), configured
    fields: tuple[FieldDrift, ...] = ()

    @property
    def ref(self) -> str:
        """`Deployment checkout/api`, `ClusterRole viewer`."""
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    def describe(self, most: int = 3) -> str:
        if self.fields:
            shown = ", ".join(f.describe() for f in self.fields[:most])
            more = f", {len(self.fields) - most} more" if len(self.fields) > most else ""
            return f"{self.ref} ({shown}{more})"
        return f"{self.ref} ({self.how})" if self.how not in ("changed", "configured") else self.ref

    def effect(self) -> Effect:
        """What the out-of-band edit did, in the terms commits are scored with."""
        if self.how in ("removed", "deleted", "created"):
            return Effect.RESOURCE
        paths = [f.path for f in self.fields]
        if any(_IMAGE_FIELDS.search(p) for p in paths):
            return Effect.IMAGE
        if paths and all(_SCALE_FIELDS.search(p) for p in paths):
            return Effect.SCALE
        if any(p.startswith("metadata.") for p in paths) and all(p.startswith("metadata.") for p in paths):
            return Effect.METADATA
        return Effect.CONFIG if paths else Effect.OTHER


class Drift(BaseModel):
    """One out-of-band change a controller reported, with its window and what became of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int | None = None
    key: str = Field(max_length=64)  # the controller event's key: a redelivery records nothing
    object_id: str  # the controller object (flux:Kustomization/flux-system/apps)
    label: str  # Flux Kustomization flux-system/apps: the source people read
    controller: Literal["flux", "argocd"]
    revision: str = ""  # the revision the object runs, which Git did not move
    resources: tuple[DriftedResource, ...] = ()
    services: tuple[str, ...] = ()  # the playbooks' services whose objects these are
    playbooks: tuple[str, ...] = ()  # the playbooks that name the object (a service's own scope)
    since: datetime | None = None  # the last clean reconcile: the drift happened after it
    detected_at: datetime
    corrected_at: datetime | None = None  # when the controller put Git's state back
    correction: str = ""  # "corrected by Flux at 12:03 UTC", "not corrected: Argo CD auto-sync is off"
    sync: str | None = None  # the command that syncs from Git; None when already corrected
    message: str = Field(default="", max_length=4000)  # the controller's own words

    @property
    def handle(self) -> str:
        return f"{DRIFT_PREFIX}{self.id}"

    @property
    def corrected(self) -> bool:
        return self.corrected_at is not None

    def describe(self) -> str:
        """'out-of-band change to Deployment checkout/api (spec.replicas 6 -> 1), corrected by Flux at 12:03 UTC'."""
        what = "; ".join(r.describe() for r in self.resources[:3]) or f"objects of {self.label}"
        more = f" and {len(self.resources) - 3} more" if len(self.resources) > 3 else ""
        return f"out-of-band change to {what}{more}" + (f", {self.correction}" if self.correction else "")

    def effect(self) -> Effect:
        effects = [r.effect() for r in self.resources] or [Effect.OTHER]
        order = [Effect.IMAGE, Effect.RESOURCE, Effect.CONFIG, Effect.SCALE, Effect.OTHER, Effect.METADATA]
        return min(effects, key=lambda e: order.index(e) if e in order else len(order))


class DriftAction(BaseModel):
    """What a suspect that is a drift carries: its handle, window and the way back to Git."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    source: str  # the controller object's label
    since: datetime | None = None
    detected_at: datetime
    corrected_at: datetime | None = None
    correction: str = ""
    sync: str | None = None  # "sync from Git": the command, or Argo CD's API where Backout has it

    def offered(self) -> str:
        """The action people are offered, in words: never a revert."""
        if self.corrected_at is not None:
            return f"nothing to do: {self.correction}" if self.correction else "nothing to do: already corrected"
        if self.sync:
            return f"sync from Git: {self.sync}"
        return f"sync {self.source} from Git"


def is_handle(text: str) -> bool:
    """Whether `text` names a drift (`drift-12`) rather than a commit."""
    return text.lower().startswith(DRIFT_PREFIX) and text[len(DRIFT_PREFIX):].isdigit()


def parse_change_set(message: str, *, verbs: tuple[str, ...] = _VERBS) -> list[DriftedResource]:
    """The objects a Flux message lists with one of `verbs` (`Deployment/checkout/api configured`,
    helm-controller's `... changed (0 additions, 1 changes, 0 removals)`); unchanged ones are not drift."""
    found: list[DriftedResource] = []
    for line in message.splitlines()[:200]:
        match = _CHANGE_LINE.match(line)
        if match is None or match.group(4) not in verbs:
            continue
        kind, namespace, name, how = match.group(1), match.group(2) or "", match.group(3), match.group(4)
        found.append(DriftedResource(kind=kind[:253], namespace=namespace[:253], name=name[:253], how=how))
    return found


def field_drifts(wanted: Any, live: Any, *, most: int = 20) -> tuple[FieldDrift, ...]:
    """The fields Git declares whose live value differs (Argo CD's target and live states): only
    what Git sets counts (the API server defaults the rest); status and server metadata never."""
    found: list[FieldDrift] = []
    _walk(wanted, live, "", found, most)
    return tuple(found)


_SKIPPED = frozenset({"status", "metadata.managedFields", "metadata.resourceVersion", "metadata.generation",
                      "metadata.uid", "metadata.creationTimestamp", "metadata.annotations"})


def _walk(wanted: Any, live: Any, path: str, found: list[FieldDrift], most: int) -> None:
    if len(found) >= most or path in _SKIPPED:
        return
    if isinstance(wanted, Mapping):
        live_map = live if isinstance(live, Mapping) else {}
        for key, value in wanted.items():
            _walk(value, live_map.get(key), f"{path}.{key}" if path else str(key), found, most)
    elif isinstance(wanted, list) and isinstance(live, list) and len(wanted) == len(live):
        for index, (one, other) in enumerate(zip(wanted, live, strict=True)):
            _walk(one, other, f"{path}[{index}]", found, most)
    elif _shown(wanted) != _shown(live):
        found.append(FieldDrift(path=path[:300], wanted=_shown(wanted), live=_shown(live)))


def _shown(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 200 else text[:199] + "…"
