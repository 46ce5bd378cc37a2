"""Freezing a service's GitOps automation in Git, and undoing exactly that. Pure: manifests in,
edits out.

A freeze is a list of edits, each a run of lines replaced by another run that starts with a
comment naming the incident, who, when and the expiry. Unfreezing finds each replacement and puts
the original lines back, byte for byte; an edit someone changed since is left alone and named.
What a freeze does (and refuses to do) is in docs/freeze.md."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.automation import SETTER, UPDATER, image_aliases, setter_policy
from bot.domain.changes import matches_any
from bot.domain.gitops import ArgoApp, FluxObject
from bot.domain.manifests import Document, documents, ending, indent_of

RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
NOTE = "# backout-freeze"


@dataclass(frozen=True)
class Edit:
    """Lines `before` of `path` replaced by `after`, which carries the freeze's note."""

    path: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    what: str  # what it does to the cluster once merged, for people

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "before": list(self.before), "after": list(self.after), "what": self.what}

    @classmethod
    def of(cls, data: Mapping[str, object]) -> Edit:
        return cls(str(data["path"]), tuple(map(str, data["before"])), tuple(map(str, data["after"])),  # type: ignore[call-overload]
                   str(data.get("what", "")))


@dataclass(frozen=True)
class Stamp:
    """Who froze, for which incident, when, until when: written beside every edit."""

    incident_ref: str
    who: str
    at: datetime
    expires: datetime

    def note(self, indent: int, what: str, eol: str) -> str:
        return (f"{' ' * indent}{NOTE} {self.incident_ref}: {what} by {self.who or 'backout'} at "
                f"{self.at:%Y-%m-%dT%H:%MZ}, expires {self.expires:%Y-%m-%dT%H:%MZ}; "
                f"`backout unfreeze {self.incident_ref}` undoes it{eol or chr(10)}")


@dataclass(frozen=True)
class Scope:
    """What belongs to the service: its paths in this repository and its controller objects."""

    paths: tuple[str, ...]
    flux: tuple[FluxObject, ...] = ()
    argocd: tuple[ArgoApp, ...] = ()
    reconcile_disabled: bool = False  # Flux's reconcile: disabled, only when a person asks for it


@dataclass(frozen=True)
class FreezePlan:
    edits: tuple[Edit, ...]
    notes: tuple[str, ...]  # what was not done, and why; what to run by hand
    files: dict[str, str] = field(default_factory=dict)  # path -> new content


def plan_freeze(files: Mapping[str, str], scope: Scope, stamp: Stamp) -> FreezePlan:
    """The edits that pause automation for the service's objects only, with what was refused."""
    docs = [doc for path, text in sorted(files.items()) for doc in documents(path, text)]
    edits: list[Edit] = []
    notes: list[str] = []
    edits += _setters(files, scope, stamp)
    found, said = _image_repositories(files, docs, scope, stamp)
    edits += found
    notes += said
    for app in scope.argocd:
        found, said = _application(docs, app, stamp)
        edits += found
        notes += said
    for obj in scope.flux:
        found, said = _reconcile(docs, obj, stamp, asked=scope.reconcile_disabled)
        edits += found
        notes += said
    notes += [f"{doc.path}: argocd-image-updater {doc.name!r} is an ImageUpdater resource (1.x): Backout "
              "freezes the annotation form (0.x) only; pause it by hand"
              for doc in docs if doc.kind == "ImageUpdater"]
    return FreezePlan(tuple(edits), tuple(notes), apply(files, edits))


def apply(files: Mapping[str, str], edits: Sequence[Edit]) -> dict[str, str]:
    """The files these edits change, with the edits made (each `before` run replaced once)."""
    out: dict[str, str] = {}
    for edit in edits:
        text = out.get(edit.path, files[edit.path])
        out[edit.path] = _replace(text, edit.before, edit.after) or text
    return out


def plan_unfreeze(files: Mapping[str, str], edits: Sequence[Edit]) -> tuple[dict[str, str], list[str]]:
    """The files with each freeze edit undone, and the edits that could not be found (changed since)."""
    out: dict[str, str] = {}
    missing = []
    for edit in reversed(edits):
        text = out.get(edit.path, files.get(edit.path))
        undone = _replace(text, edit.after, edit.before) if text is not None else None
        if undone is None:
            missing.append(f"{edit.path}: {edit.what}: the frozen lines changed since; undo it by hand")
            continue
        out[edit.path] = undone
    return out, missing


def _replace(text: str | None, old: Sequence[str], new: Sequence[str]) -> str | None:
    if text is None:
        return None
    lines = text.splitlines(keepends=True)
    size = len(old)
    for index in range(len(lines) - size + 1):
        if tuple(lines[index:index + size]) == tuple(old):
            return "".join([*lines[:index], *new, *lines[index + size:]])
    return None


def _setters(files: Mapping[str, str], scope: Scope, stamp: Stamp) -> list[Edit]:
    edits = []
    for path, text in sorted(files.items()):
        if not matches_any(path, scope.paths):
            continue
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            policy = setter_policy(body)
            if policy is None:
                continue
            kept = SETTER.sub("", body).rstrip()
            what = f"Flux image automation stops updating `{kept.strip()}` (image policy {policy})"
            edits.append(Edit(path, (line,), (stamp.note(indent_of(line), "image policy marker removed",
                                                         ending(line)), kept + ending(line)), what))
    return edits


def _policy_repository(docs: Sequence[Document]) -> dict[str, str]:
    """ImagePolicy `ns:name` -> its ImageRepository `ns/name`."""
    found = {}
    for doc in docs:
        if doc.kind == "ImagePolicy":
            repo = doc.value(("spec", "imageRepositoryRef", "name"))
            namespace = doc.value(("spec", "imageRepositoryRef", "namespace")) or doc.namespace
            found[f"{doc.namespace}:{doc.name}"] = f"{namespace}/{repo}"
    return found


def _image_repositories(files: Mapping[str, str], docs: Sequence[Document], scope: Scope,
                        stamp: Stamp) -> tuple[list[Edit], list[str]]:
    """Suspend the ImageRepositories only the service's lines use; say why a shared one is not."""
    repository = _policy_repository(docs)
    users: dict[str, set[str]] = {}  # ImageRepository -> paths of setter lines that use it
    for path, text in files.items():
        for line in text.splitlines():
            policy = setter_policy(line)
            if policy and (repo := repository.get(":".join(policy.split(":")[:2]))):
                users.setdefault(repo, set()).add(path)
    edits, notes = [], []
    for repo, paths in sorted(users.items()):
        if not any(matches_any(p, scope.paths) for p in paths):
            continue
        others = sorted(p for p in paths if not matches_any(p, scope.paths))
        if others:
            notes.append(f"ImageRepository {repo} is not suspended: other services use it too "
                         f"({', '.join(others[:5])}); the markers on this service's lines are removed instead")
            continue
        doc = next((d for d in docs if d.kind == "ImageRepository" and f"{d.namespace}/{d.name}" == repo), None)
        if doc is None:
            notes.append(f"ImageRepository {repo} is not in this repository: suspend it by hand "
                         f"(`flux suspend image repository {repo.split('/')[1]} -n {repo.split('/')[0]}`)")
        elif doc.has(("spec",)) and doc.value(("spec", "suspend")) != "true":
            edits.append(_set_key(doc, ("spec",), "suspend", "true", stamp, (
                f"Flux stops scanning the registry for ImageRepository {repo} (suspended): no new tag is "
                "picked for it")))
    return edits, notes


def _set_key(doc: Document, parent: tuple[str, ...], key: str, value: str, stamp: Stamp, what: str) -> Edit:
    """`key: value` under `parent`: the existing line replaced, or a line inserted after the parent's."""
    block = doc.block(parent)
    eol = ending(doc.lines[block.start]) or "\n"
    indent = block.child_indent
    line = f"{' ' * indent}{key}: {value}{eol}"
    note = stamp.note(indent, f"{key}: {value}", eol)
    if doc.has((*parent, key)):
        old = doc.lines[doc.block((*parent, key)).start]
        return Edit(doc.path, (old,), (note, line), what)
    head = doc.lines[block.start]
    return Edit(doc.path, (head,), (head, note, line), what)


def _application(docs: Sequence[Document], app: ArgoApp, stamp: Stamp) -> tuple[list[Edit], list[str]]:
    """Argo CD: automated sync off and image-updater tags ignored on the service's Application."""
    doc = next((d for d in docs if d.kind == "Application" and d.name == app.app
                and app.namespace in (None, d.namespace or None)), None)
    # A manifest of its own is not generated, unless an ApplicationSet names it outright.
    generator = next((d for d in docs if d.kind == "ApplicationSet"
                      and _generates(d, app.app, templated=doc is None)), None)
    if generator is not None:
        return [], [f"Application {app.app} is generated by ApplicationSet {generator.name} ({generator.path}): "
                    "Backout does not freeze it, since the ApplicationSet rewrites the Application it generates "
                    "and changing the ApplicationSet changes every Application it makes; pause it by hand"]
    command = f"`argocd app set {app.app} --sync-policy none`"
    if doc is None:
        return [], [f"Application {app.app} has no manifest in this repository: run {command} to stop its "
                    "automated sync"]
    edits: list[Edit] = []
    notes: list[str] = []
    if doc.has(("spec", "syncPolicy", "automated")):
        block = doc.block(("spec", "syncPolicy", "automated"))
        before = doc.lines[block.start:block.end]
        eol = ending(before[-1]) or "\n"
        edits.append(Edit(doc.path, tuple(before), (stamp.note(indent_of(before[0]), (
            "syncPolicy.automated removed (restored by unfreeze): " + " ".join(
                line.strip() for line in before)), eol),), (
            f"Argo CD stops syncing Application {app.app} automatically (sync by hand only). This takes effect "
            f"only where the Application is itself synced from Git (app of apps); otherwise run {command}")))
    edits += _ignore_all_tags(doc, stamp)
    return edits, notes


def _generates(appset: Document, app: str, *, templated: bool) -> bool:
    """Whether an ApplicationSet's template names an Application `app`: outright, or (`templated`)
    through placeholders that can become it."""
    if not appset.has(("spec", "template", "metadata", "name")):
        return False
    name = appset.value(("spec", "template", "metadata", "name"))
    if not templated or "{{" not in name:
        return name == app
    parts = re.split(r"\{\{[^}]*\}\}", name)
    return re.fullmatch(".+".join(re.escape(p) for p in parts), app) is not None


def _ignore_all_tags(doc: Document, stamp: Stamp) -> list[Edit]:
    """argocd-image-updater (annotations, 0.x): `<alias>.ignore-tags: "*"` for every image it updates."""
    annotations = doc.block(("metadata", "annotations"))
    text = "".join(doc.lines[annotations.start:annotations.end])
    edits = []
    for alias in image_aliases(text):
        key = f"{UPDATER}/{alias}.ignore-tags"
        what = f"argocd-image-updater stops updating image {alias} of Application {doc.name} (every tag ignored)"
        edits.append(_set_key(doc, ("metadata", "annotations"), key, '"*"', stamp, what))
    return edits


def _reconcile(docs: Sequence[Document], obj: FluxObject, stamp: Stamp, *, asked: bool
               ) -> tuple[list[Edit], list[str]]:
    """Flux's `reconcile: disabled` on the service's Kustomization or HelmRelease, only when asked."""
    if not asked:
        return [], []
    label = f"{obj.kind} {obj.namespace}/{obj.name}"
    if obj.name == "flux-system":
        return [], [f"{label} is Flux itself: Backout never disables its reconciliation"]
    doc = next((d for d in docs if d.kind == obj.kind and d.name == obj.name
                and (d.namespace or obj.namespace) == obj.namespace), None)
    if doc is None:
        return [], [f"{label} has no manifest in this repository: run `flux suspend "
                    f"{'kustomization' if obj.kind == 'Kustomization' else 'helmrelease'} {obj.name} "
                    f"-n {obj.namespace}` if you must stop it"]
    what = (f"Flux stops applying {label} (reconcile: disabled). This blocks every later change to it, a "
            "revert's or restore's included, until the unfreeze merges")
    if doc.has(("metadata", "annotations")):
        return [_set_key(doc, ("metadata", "annotations"), RECONCILE, "disabled", stamp, what)], []
    block = doc.block(("metadata",))
    head = doc.lines[block.start]
    eol = ending(head) or "\n"
    indent = block.child_indent
    return [Edit(doc.path, (head,), (head, stamp.note(indent, f"{RECONCILE}: disabled", eol),
                                     f"{' ' * indent}annotations:{eol}",
                                     f"{' ' * (indent + 2)}{RECONCILE}: disabled{eol}"), what)], []

