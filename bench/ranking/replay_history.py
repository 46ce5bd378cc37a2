"""Real GitOps histories as the replay data files keep them: commits, services, effects.

A data file (`replay/<owner>-<name>.json`, written by `replay_data.py`) holds a window of a real
repository's first-parent history; `load` applies its line edits to give each commit's files in
full. Services come from the layout: each application folder is one (the folder, and the Flux
Kustomization file named after it beside it); the repository's cluster-wide folders are shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.git.classify import classify
from bot.domain.changes import NO_EFFECT, matches_any

DATA_DIR = Path(__file__).resolve().parent / "replay"
SHARED = "(shared)"  # the owner of a shared path

Edit = tuple[int, int, list[str]]  # replace lines [first, past) with these


def apply_edits(old: str, edits: list[Edit]) -> str:
    """A file's new text from its old text and line edits listed last first."""
    lines = old.splitlines(keepends=True)
    for first, past, replacement in edits:
        lines[first:past] = replacement
    return "".join(lines)


@dataclass
class ReplayCommit:
    at: datetime
    subject: str
    sha: str  # the original commit, for the reader; the rebuilt one differs
    reverts: int | None  # index of the earlier commit of the window it undoes
    files: dict[str, str | None]  # the new full text; None where deleted


@dataclass
class History:
    name: str  # the data file's: owner-name, with a suffix for a second window
    repository: str  # owner/name
    pinned: str
    root: str
    apps: str
    shared: tuple[str, ...]
    base: dict[str, str]
    commits: list[ReplayCommit]

    @property
    def world(self) -> str:
        """The name of its rebuilt repository, in labels, playbooks and the figures."""
        return self.name.lower()


def load(path: Path) -> History:
    """A data file, its line edits applied: every commit with its files' full text."""
    data = json.loads(path.read_text())
    text: dict[str, str] = dict(data["base"])
    commits = []
    for raw in data["commits"]:
        files: dict[str, str | None] = {}
        for name, change in raw["files"].items():
            new = apply_edits(text[name], change) if isinstance(change, list) else change
            files[name] = new
            if new is None:
                text.pop(name, None)
            else:
                text[name] = new
        commits.append(ReplayCommit(at=datetime.fromtimestamp(raw["time"], UTC), subject=raw["subject"],
                                    sha=raw["sha"], reverts=raw["reverts"], files=files))
    return History(name=path.stem, repository=data["repository"], pinned=data["pinned"], root=data["root"],
                   apps=data["apps"], shared=tuple(data["shared"]), base=data["base"], commits=commits)


def histories() -> list[History]:
    """Every replay data file, by name."""
    return [load(path) for path in sorted(DATA_DIR.glob("*.json"))]


def service_globs(folder: str) -> tuple[str, ...]:
    """An application's paths: its folder and the Flux Kustomization file named after it beside it."""
    return (f"{folder}/**", f"{folder}.yaml")


def services(history: History) -> dict[str, str]:
    """Application folders (the `apps` glob's depth, not under a shared path) -> service names."""
    depth = len(history.apps.split("/"))
    folders = set()
    for commit in [history.base, *(c.files for c in history.commits)]:
        for path in commit:
            parts = path.split("/")
            folder = "/".join(parts[:depth])
            if len(parts) > depth and matches_any(folder + "/", (history.apps + "/",)) and not matches_any(
                    path, history.shared):
                folders.add(folder)
    # the service name: the folder below the root, readable in a label
    return {f: f.removeprefix(history.root).replace("/", "-").lower() for f in sorted(folders)}


def owner(path: str, *, history: History, folders: dict[str, str]) -> str | None:
    """The service a path belongs to, SHARED for a shared path, else None."""
    if matches_any(path, history.shared):
        return SHARED
    return next((folders[f] for f in folders if matches_any(path, service_globs(f))), None)


def effective_owners(history: History) -> list[set[str]]:
    """Per commit, the services (and SHARED) it changed the deployed state of, as Backout classifies."""
    folders = services(history)
    text = dict(history.base)
    found = []
    for commit in history.commits:
        owners = set()
        renamed = _renames(commit.files, text)
        for path, new in commit.files.items():
            if path in renamed.values():
                continue  # a rename's old side: classified with its new side
            old = text.get(renamed[path]) if path in renamed else text.get(path)
            effects, _ = classify(path, None if old is None else old.encode(), None if new is None else new.encode())
            who = owner(path, history=history, folders=folders)
            if who is not None and not set(effects) <= NO_EFFECT:
                owners.add(who)
            if new is None:
                text.pop(path, None)
            else:
                text[path] = new
        found.append(owners)
    return found


def _renames(files: dict[str, str | None], text: dict[str, str]) -> dict[str, str]:
    """New path -> old path for the files a commit moved within a folder (`x.yml` to `x.yaml`), as
    git's rename detection pairs them at import: a move alone has no effect."""
    deleted = [p for p, t in files.items() if t is None and p in text]
    pairs = {}
    for path, new in files.items():
        if new is None or path in text:
            continue
        folder = path.rsplit("/", 1)[0]
        same = [p for p in deleted if text[p] == new] or [p for p in deleted if p.rsplit("/", 1)[0] == folder]
        if same and same[0] not in pairs.values():
            pairs[path] = same[0]
    return pairs
