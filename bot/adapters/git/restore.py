"""Staging a restore in a temporary worktree: a service's paths put back to a good revision."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.git.runner import GitRunner
from bot.domain.changes import matches_any


def stage_restore(runner: GitRunner, tree: Path, *, good: str, paths: tuple[str, ...],
                  exclude: tuple[str, ...]) -> list[str]:
    """Stage every file under `paths` (and not under `exclude`) as it is at `good`: changed files
    back to their content and mode, deleted ones back, and those added since removed. Nothing else
    is touched. Returns the paths staged (empty: they already are as at `good`)."""
    def wanted(path: str) -> bool:
        return matches_any(path, paths) is not None and matches_any(path, exclude) is None

    at_good = {p for p in _files(runner, tree, good) if wanted(p)}
    added_since = sorted(p for p in _files(runner, tree, "HEAD") if wanted(p) and p not in at_good)
    if at_good:
        runner.run(["checkout", good, "--pathspec-from-file=-", "--pathspec-file-nul"], cwd=tree,
                   stdin=_pathspecs(sorted(at_good)))
    if added_since:
        runner.run(["rm", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul"], cwd=tree,
                   stdin=_pathspecs(added_since))
    return runner.text(["diff", "--cached", "--name-only", "--no-renames", "HEAD"], cwd=tree).splitlines()


def _files(runner: GitRunner, tree: Path, rev: str) -> list[str]:
    listed = runner.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev], cwd=tree).stdout
    return [name.decode("utf-8", "surrogateescape") for name in listed.split(b"\0") if name]


def _pathspecs(paths: list[str]) -> bytes:
    """Literal pathspecs (a file named `*.yaml` means itself), NUL-separated."""
    return b"".join(f":(literal){path}".encode("utf-8", "surrogateescape") + b"\0" for path in paths)
