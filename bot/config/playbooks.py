"""Loading the playbooks folder: each file validated, every problem with its file, key and line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import (
    ValidationError,
)

from bot.config.loading import line_of, read_yaml, validation_problems
from bot.config.problems import ConfigError, Problem
from bot.domain.playbooks import Playbook


def load_playbooks(directory: Path, *, known_repos: Iterable[str] | None = None) -> list[Playbook]:
    """Every `*.yaml`/`*.yml` in the folder, validated; all problems reported at once."""
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory.absolute()), "playbooks_dir",
                                   "is not a folder: create it, or set playbooks_dir (BACKOUT_PLAYBOOKS_DIR) "
                                   "to the folder of your playbooks")])
    repos = None if known_repos is None else set(known_repos)
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            playbooks.append(_load_playbook(path, known_repos=repos))
        except ConfigError as exc:
            problems.extend(exc.problems)
    names = [playbook.name for playbook in playbooks]
    for name in sorted({name for name in names if names.count(name) > 1}):
        problems.append(Problem(str(directory), "name", f"{name!r} is used by two playbooks"))
    if problems:
        raise ConfigError(problems)
    return playbooks


def _load_playbook(path: Path, *, known_repos: set[str] | None) -> Playbook:
    data, root = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "a playbook must be a mapping")])
    data.setdefault("name", path.stem)
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, file=str(path), root=root, model=Playbook)) from None
    if known_repos is not None:
        missing = [
            Problem(str(path), f"repos.{index}.repo",
                    f"{entry.repo!r} is not a repository in the config's `repos` "
                    f"(known: {', '.join(sorted(known_repos)) or 'none'})",
                    line_of(root, ("repos", index, "repo")))
            for index, entry in enumerate(playbook.repos)
            if entry.repo not in known_repos
        ]
        if missing:
            raise ConfigError(missing)
    return playbook
