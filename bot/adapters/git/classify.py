"""What a file change did to the deployed state, from the parsed old and new content.

Runs once per change, at import. YAML and JSON are parsed (every document of a file) and
compared as data: equal data means the edit touched only comments, whitespace, key order or
quoting. Otherwise the changed key paths say what kind of change it was, and for images and
versions the old and new values are kept for the reasons people read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from bot.domain.changes import Effect, ImageBump, effect_by_path

try:  # libyaml when present: about ten times faster
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

DATA_SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 2_000_000  # larger files are classified by path only
MAX_ALIASES = 20  # more YAML aliases: effect unknown (with 20, what they expand to stays under ~1,500 copies)
_ALIAS = re.compile(rb"(?<![\w&*-])\*[A-Za-z0-9_.-]+")

_IMAGE_KEYS = {"image", "images", "newtag", "newname", "digest", "tag"}
_VERSION_KEYS = {"version", "appversion", "targetrevision", "chart", "ref", "semver", "branch", "commit"}
_SCALE_KEYS = {"replicas", "replicacount", "minreplicas", "maxreplicas", "resources", "limits", "requests",
               "cpu", "memory", "minavailable", "maxunavailable", "autoscaling"}
_METADATA_KEYS = {"labels", "annotations", "commonlabels", "commonannotations"}
_POLICY_KINDS = {"networkpolicy", "clusterpolicy", "policy", "podsecuritypolicy", "validatingadmissionpolicy",
                 "validatingadmissionpolicybinding", "mutatingwebhookconfiguration",
                 "validatingwebhookconfiguration", "authorizationpolicy", "peerauthentication",
                 "ciliumnetworkpolicy", "ciliumclusterwidenetworkpolicy", "constrainttemplate", "resourcequota",
                 "limitrange", "role", "rolebinding", "clusterrole", "clusterrolebinding",
                 "poddisruptionbudget"}
_SCALE_KINDS = {"horizontalpodautoscaler", "verticalpodautoscaler", "scaledobject"}
_MOST_NOTES = 4


def needs_content(path: str) -> bool:
    """Whether classifying this path needs its old and new content."""
    return effect_by_path(path) is None and path.lower().endswith(DATA_SUFFIXES)


def classify(path: str, old: bytes | None, new: bytes | None) -> tuple[tuple[Effect, ...], tuple[str, ...]]:
    """Effects and notes for one file change; `old`/`new` are None where the side is absent."""
    effects, notes, _ = classify_file(path, old, new)
    return effects, notes


def classify_file(path: str, old: bytes | None, new: bytes | None) -> tuple[
        tuple[Effect, ...], tuple[str, ...], tuple[ImageBump, ...]]:
    """Effects, notes and image tag bumps for one file change."""
    by_path = effect_by_path(path)
    if by_path is not None:
        return (by_path,), (), ()
    if not path.lower().endswith(DATA_SUFFIXES):
        return (Effect.OTHER,), (), ()
    before, after = _documents(old), _documents(new)
    if before is None or after is None:
        return (Effect.OTHER,), (), ()  # not parseable (a Helm template, say): effect unknown
    if before == after:
        return (Effect.COSMETIC,), (), ()
    effects: set[Effect] = set()
    notes: list[str] = []
    bumps: list[ImageBump] = []
    old_docs, new_docs = _keyed(before), _keyed(after)
    for key in old_docs.keys() | new_docs.keys():
        was, now = old_docs.get(key), new_docs.get(key)
        kind = _kind(now if now is not None else was)
        if was is None or now is None:
            effects.add(_kind_effect(kind) or Effect.RESOURCE)
            notes.append(f"{'added' if was is None else 'removed'} {_describe(now if was is None else was)}")
            continue
        if was == now:
            continue
        kind_effect = _kind_effect(kind)
        for changed_path, old_value, new_value, container in _diff(was, now, ()):
            effect = _path_effect(changed_path)
            if kind_effect is not None and effect not in (Effect.IMAGE, Effect.VERSION):
                effect = kind_effect
            effects.add(effect)
            if effect in (Effect.IMAGE, Effect.VERSION, Effect.SCALE) or len(notes) < _MOST_NOTES:
                notes.append(_note(changed_path, old_value, new_value))
            if effect is Effect.IMAGE and (bump := _bump(changed_path, old_value, new_value, container)):
                bumps.append(bump)
    if not effects:
        effects.add(Effect.COSMETIC)  # documents moved within the file
    ordered = tuple(sorted(effects, key=list(Effect).index))
    return ordered, tuple(dict.fromkeys(notes))[:_MOST_NOTES], tuple(dict.fromkeys(bumps))[:_MOST_NOTES]


def _documents(blob: bytes | None) -> list[Any] | None:
    if blob is None:
        return []
    if len(blob) > MAX_BYTES or len(_ALIAS.findall(blob, 0, MAX_BYTES)) > MAX_ALIASES:
        return None  # comparing heavily aliased data can take exponential time
    try:
        return [doc for doc in yaml.load_all(blob, Loader=_Loader) if doc is not None]
    except (yaml.YAMLError, ValueError, RecursionError):
        return None


def _keyed(documents: list[Any]) -> dict[tuple[Any, ...], Any]:
    """Documents by Kubernetes identity (kind, namespace, name), else by position."""
    keyed: dict[tuple[Any, ...], Any] = {}
    for index, doc in enumerate(documents):
        key: tuple[Any, ...] = ("#", index)
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
            meta = _metadata(doc)
            key = (doc["kind"], str(meta.get("namespace", "")), str(meta.get("name", index)))
        while key in keyed:
            key = (*key, index)
        keyed[key] = doc
    return keyed


def _metadata(doc: dict[Any, Any]) -> dict[Any, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _kind(doc: Any) -> str:
    return str(doc.get("kind", "")).lower() if isinstance(doc, dict) else ""


def _kind_effect(kind: str) -> Effect | None:
    if kind == "customresourcedefinition":
        return Effect.CRD
    if kind in _POLICY_KINDS:
        return Effect.POLICY
    if kind in _SCALE_KINDS:
        return Effect.SCALE
    return None


def _describe(doc: Any) -> str:
    if isinstance(doc, dict) and doc.get("kind"):
        meta = _metadata(doc)
        return f"{doc['kind']} {meta.get('name', '')}".strip()
    return "a document"


def _diff(old: Any, new: Any, path: tuple[str, ...],
          parent: Any = None) -> Iterator[tuple[tuple[str, ...], Any, Any, Any]]:
    """Leaf differences between two parsed documents, as (key path, old, new, the new side's
    container of the leaf)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key) != new.get(key):
                yield from _diff(old.get(key), new.get(key), (*path, str(key)), new)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                name = _item_name(b)
                yield from _diff(a, b, (*path, name if name else f"[{index}]"), new)
        return
    yield path, old, new, parent


def _item_name(item: Any) -> str | None:
    if isinstance(item, dict):
        for key in ("name", "key", "id"):
            if isinstance(item.get(key), str | int):
                return str(item[key])
    return None


def _path_effect(path: tuple[str, ...]) -> Effect:
    keys = [part.lower() for part in path]
    if keys and keys[0] == "metadata" and len(keys) > 1 and keys[1] in _METADATA_KEYS:
        return Effect.METADATA
    if any(k in _IMAGE_KEYS for k in keys):
        return Effect.IMAGE
    if keys and keys[-1] in _VERSION_KEYS:
        return Effect.VERSION
    if any(k in _SCALE_KEYS for k in keys):
        return Effect.SCALE
    if any(k in _METADATA_KEYS for k in keys[:-1]) and not any(k in ("spec", "template") for k in keys[:2]):
        return Effect.METADATA
    return Effect.CONFIG


def _note(path: tuple[str, ...], old: Any, new: Any) -> str:
    where = ".".join(path) or "document"
    if isinstance(old, str) and isinstance(new, str) and path and path[-1].lower() == "image":
        old_name, _, old_tag = old.rpartition(":") if ":" in old.split("/")[-1] else (old, "", "")
        new_name, _, new_tag = new.rpartition(":") if ":" in new.split("/")[-1] else (new, "", "")
        if old_name == new_name and old_tag and new_tag:
            return f"image {new_name.split('/')[-1]} {old_tag} -> {new_tag}"
        return f"image {_short(old)} -> {_short(new)}"
    if _scalar(old) and _scalar(new):
        return f"{where} {_short(old)} -> {_short(new)}"
    if old is None:
        return f"{where} added"
    if new is None:
        return f"{where} removed"
    return f"{where} changed"


def _bump(path: tuple[str, ...], old: Any, new: Any, container: Any) -> ImageBump | None:
    """An image tag that moved: `image: name:old -> name:new`, a kustomize `images` entry's
    `newTag`, or Helm values' `image.tag` beside `image.repository`."""
    if not path or not _scalar(old) or not _scalar(new):
        return None
    last = path[-1].lower()
    if last == "image" and isinstance(old, str) and isinstance(new, str):
        old_name, old_tag = _split_image(old)
        new_name, new_tag = _split_image(new)
        if old_name == new_name and old_tag and new_tag:
            return ImageBump(image=new_name, old=old_tag, new=new_tag)
        return None
    if last in ("newtag", "tag") and isinstance(container, dict):
        name = container.get("newName") or container.get("repository") or container.get("name")
        if isinstance(name, str) and name:
            return ImageBump(image=name, old=str(old), new=str(new))
    return None


def _split_image(ref: str) -> tuple[str, str]:
    """`registry/name:tag@digest` -> (`registry/name`, `tag`); no tag -> (ref, "")."""
    ref = ref.split("@", 1)[0]
    if ":" in ref.rsplit("/", 1)[-1]:
        name, _, tag = ref.rpartition(":")
        return name, tag
    return ref, ""


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _short(value: Any, most: int = 60) -> str:
    text = str(value)
    return text if len(text) <= most else text[: most - 1] + "…"
