"""Revert safety: changes that a `git revert` may not undo cleanly in the cluster. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.domain.automation import automation_warnings

# (flag, why it matters, path pattern, patch-line pattern): a flag is raised when a touched path
# matches the path pattern or a changed line of the patch matches the line pattern.
_RULES: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("database-migration",
     "database migrations do not run backwards when their files are removed",
     r"(^|/)(migrations?|alembic|flyway|liquibase|db/migrate)/|\.sql$", None),
    ("crd",
     "CRDs may have converted stored objects; reverting can orphan or break them",
     r"(^|/)crds?/", r"^\s*kind:\s*CustomResourceDefinition"),
    ("persistent-volume",
     "PersistentVolumeClaims and StatefulSet volume templates are immutable or keep their data",
     None, r"^\s*(kind:\s*PersistentVolumeClaim|volumeClaimTemplates:|storageClassName:)"),
    ("helm-hook",
     "Helm hooks (jobs such as migrations) ran once and are not undone by a revert",
     None, r"helm\.sh/hook"),
    ("secret",
     "secrets may have been rotated since: reverting restores an old value",
     r"(^|/)secrets?/|sealed-?secret", r"^\s*kind:\s*(Secret|SealedSecret|ExternalSecret)\b"),
)


def revert_warnings(paths: Sequence[str], patch: str) -> tuple[str, ...]:
    """Warnings for a revert of a change touching `paths` with this unified diff."""
    lines = [line for line in patch.splitlines() if not line.startswith(("+++", "---"))]
    changed = [line[1:] for line in lines if line[:1] in "+-"]
    found = []
    for flag, why, path_rx, line_rx in _RULES:
        by_path = path_rx is not None and any(re.search(path_rx, p, re.IGNORECASE) for p in paths)
        by_line = line_rx is not None and any(re.search(line_rx, line) for line in changed)
        if by_path or by_line:
            found.append(f"{flag}: {why}")
    removed = {_api(line) for line in lines if line.startswith("-") and _api(line)}
    added = {_api(line) for line in lines if line.startswith("+") and _api(line)}
    if removed and added and removed != added:
        found.append("api-version: the change moved objects to another apiVersion "
                     f"({', '.join(sorted(removed))} -> {', '.join(sorted(added))}); stored objects "
                     "may already be converted")
    return tuple(found) + automation_warnings(paths, patch)


def _api(line: str) -> str:
    match = re.match(r"^[+-]\s*apiVersion:\s*(\S+)", line)
    return match.group(1) if match else ""
