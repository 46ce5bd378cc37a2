"""Pinning a staged revert against image automation, in its temporary worktree."""

from __future__ import annotations

import re
from pathlib import Path

from bot.adapters.git.runner import GitRunner
from bot.domain.automation import UPDATER, Pin, ignore_tag, image_aliases, strip_setters, tags_in, write_back_app


def pin_revert(runner: GitRunner, tree: Path) -> tuple[list[Pin], list[str]]:
    """Keep image automation off what the staged revert restores: strip Flux setter markers
    from the restored lines; add the reverted tag to argocd-image-updater's ignore-tags."""
    diff = runner.run(["diff", "--cached", "-U0", "--no-color", "--no-ext-diff", "HEAD"], cwd=tree).stdout
    added, removed = _diff_lines(diff.decode("utf-8", "replace"))
    pins: list[Pin] = []
    for path, numbers in added.items():
        file = tree / path
        if not file.is_file():
            continue
        text, found = strip_setters(file.read_text(encoding="utf-8", errors="replace"), numbers, path=path)
        if found:
            file.write_text(text, encoding="utf-8")
            runner.run(["add", "--", path], cwd=tree)
            pins += found
    unpinned: list[str] = []
    for path in sorted(set(added) | set(removed)):
        app = write_back_app(path)
        if app is None:
            continue
        tags = [tag for tag in tags_in(removed.get(path, []))]
        pinned = _ignore_tags(runner, tree, app, tags) if tags else []
        pins += pinned
        if not pinned:
            unpinned.append(
                f"argocd-image-updater writes back {path} for Application {app}, and no Application "
                f"manifest with its image-list annotation is in this repository: add the reverted tag "
                f"to its ignore-tags in Argo CD before merging, or the updater re-commits it")
    return pins, unpinned


def _ignore_tags(runner: GitRunner, tree: Path, app: str, tags: list[tuple[str | None, str]]) -> list[Pin]:
    listed = runner.run(["grep", "-l", "-F", f"{UPDATER}/image-list"], cwd=tree, check=False)
    pins = []
    for path in listed.stdout.decode().split():
        file = tree / path
        text = file.read_text(encoding="utf-8", errors="replace")
        aliases = image_aliases(text)
        for image, tag in tags:
            alias = next((a for a, i in aliases.items() if image and i == image), None)
            if alias is None and len(aliases) == 1 and image is None:
                alias = next(iter(aliases))
            if alias is None:
                continue
            changed = ignore_tag(text, app=app, alias=alias, tag=tag)
            if changed is None or changed == text:
                continue
            text = changed
            file.write_text(text, encoding="utf-8")
            runner.run(["add", "--", path], cwd=tree)
            pins.append(Pin(path, 0, (
                f"{path}: added {tag} to {UPDATER}/{alias}.ignore-tags of Application {app}, so "
                "argocd-image-updater does not write it back; remove it once the fix ships")))
    return pins


def _diff_lines(diff: str) -> tuple[dict[str, set[int]], dict[str, list[str]]]:
    """From a `-U0` diff: the new-side line numbers added, and the lines removed, per file."""
    added: dict[str, set[int]] = {}
    removed: dict[str, list[str]] = {}
    path, number = "", 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else ""
        elif line.startswith("--- "):
            continue
        elif line.startswith("@@"):
            match = re.match(r"^@@ -\d+(?:,\d+)? \+(\d+)", line)
            number = int(match.group(1)) if match else 0
        elif line.startswith("+") and path:
            added.setdefault(path, set()).add(number)
            number += 1
        elif line.startswith("-") and path:
            removed.setdefault(path, []).append(line[1:])
    return added, removed
