"""Loading the settings: the config file found, YAML read (duplicate keys refused), relative paths
anchored at the file's folder, `BACKOUT_*` overrides, `*_file` secrets, and validation errors
turned into problems with their file, key and line."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from bot.config.chat import SlackSettings
from bot.config.git import GithubSettings, GitlabSettings, RepoSettings
from bot.config.problems import ConfigError, Problem
from bot.config.section import SECRETS_NEEDED, UNUSED_SECTIONS
from bot.config.settings import Settings
from bot.config.storage import StorageSettings

DEFAULT_CONFIG = Path("config.yaml")


def find_config_file(explicit: Path | None) -> Path | None:
    """`--config`, else BACKOUT_CONFIG, else ./config.yaml if it exists, else none."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get("BACKOUT_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(path: Path | None = None, *, secrets: bool = True) -> Settings:
    """Load and validate the settings; raise ConfigError naming file, key and line. With
    `secrets=False`, secret files that cannot be read are left unset (for read commands)."""
    reset = SECRETS_NEEDED.set(False)
    try:
        settings = _load_settings(path)  # first without secrets: which sections does it use?
    finally:
        SECRETS_NEEDED.reset(reset)
    if not secrets:
        return settings
    unused = set()
    if settings.chat.kind != "slack":
        unused.add(SlackSettings.__name__)
    if not any(repo.forge == "github" for repo in settings.repos):
        unused.add(GithubSettings.__name__)
    if not any(repo.forge == "gitlab" for repo in settings.repos):
        unused.add(GitlabSettings.__name__)
    reset_unused = UNUSED_SECTIONS.set(frozenset(unused))
    try:
        return _load_settings(path)
    finally:
        UNUSED_SECTIONS.reset(reset_unused)


def _load_settings(path: Path | None) -> Settings:
    config_file = find_config_file(path)
    label = str(config_file) if config_file else "(built-in defaults and environment)"
    data, root = read_yaml(config_file) if config_file else ({}, None)
    if not isinstance(data, dict):
        raise ConfigError([Problem(label, "", "the top level must be a mapping of settings")])
    if config_file is not None:
        data = _anchored(data, Settings, config_file.resolve().parent)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, file=label, root=root, model=Settings,
                                              env_prefix="BACKOUT_")) from None
    return settings


def _anchored(data: dict[str, Any], model: type[BaseModel], base: Path) -> dict[str, Any]:
    """The file's relative paths made absolute against the file's folder, as Prometheus and
    Alertmanager read theirs: every `Path` setting (secret files, playbooks, mirrors) and a
    relative SQLite file. Values from the environment stay relative to the working directory."""
    anchored = dict(data)
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue
        kinds = _field_kinds(field.annotation)
        if Path in kinds and isinstance(value, str) and value and not Path(value).is_absolute():
            anchored[key] = str(base / value)
        elif model is StorageSettings and key == "url" and isinstance(value, str):
            anchored[key] = _anchored_sqlite(value, base)
        elif model is RepoSettings and key == "url" and isinstance(value, str) and _local_path(value):
            anchored[key] = str(base / value)
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                if isinstance(value, dict):
                    anchored[key] = _anchored(value, kind, base)
                elif isinstance(value, list):
                    anchored[key] = [_anchored(item, kind, base) if isinstance(item, dict) else item
                                     for item in value]
    return anchored


def _field_kinds(annotation: Any) -> list[Any]:
    """The classes a field's annotation names: Path | None gives [Path, NoneType]; list[X] gives [X]."""
    arguments = getattr(annotation, "__args__", None)
    if arguments is None:
        return [annotation]
    return [kind for argument in arguments for kind in _field_kinds(argument)]


def _local_path(url: str) -> bool:
    """A relative local path: not `scheme://...`, not scp-like `host:path`, not absolute."""
    return bool(url) and "://" not in url and ":" not in url.split("/")[0] and not Path(url).is_absolute()


def _anchored_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix or ":memory:" in url:
        return url
    return prefix + str(base / url.removeprefix(prefix))


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), "", f"not valid YAML: {reason}", line)]) from None
    if duplicates := list(_duplicate_keys(root, ())):
        raise ConfigError([Problem(str(path), ".".join(where), f"is set twice (first on line {first}); "
                                   "YAML keeps only the last, so one of them is a mistake", line)
                           for where, first, line in duplicates])
    return ({} if data is None else data), root


def _duplicate_keys(node: yaml.Node | None, where: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], int, int]]:
    """(key path, first line, repeated line) for each key a mapping has twice."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                yield (*where, name), seen[name], line
            seen.setdefault(name, line)
            yield from _duplicate_keys(value, (*where, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*where, str(index)))


def validation_problems(exc: ValidationError, *, file: str, root: yaml.Node | None,
              model: type[BaseModel] | None = None, env_prefix: str | None = None) -> list[Problem]:
    """Each error where it is: the file's key and line, or the environment variable that set the
    value; "did you mean" for an unknown key; sorted by file and line."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc)
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and model is not None:
            reason = "unknown key" + _did_you_mean(model, loc)
        variable = _env_source(loc, env_prefix) if env_prefix else None
        if variable is not None:
            problems.append(Problem(f"environment {variable}", key, reason))
        else:
            problems.append(Problem(file, key, reason, line_of(root, loc)))
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.key))


def _env_source(loc: Sequence[Any], prefix: str) -> str | None:
    """The environment variable that set this key (or the section holding it), if one did."""
    parts = [str(part).upper() for part in loc]
    for size in range(len(parts), 0, -1):
        name = prefix + "__".join(parts[:size])
        if any(existing.upper() == name for existing in os.environ):
            return name
    return None


def _did_you_mean(model: type[BaseModel], loc: Sequence[Any]) -> str:
    """`; did you mean 'bearer_token'?` for a key close to one the section knows."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        kinds = _field_kinds(field.annotation) if field else []
        current = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    if current is None:
        return ""
    known = [name for name, field in current.model_fields.items()] + [
        field.alias for field in current.model_fields.values() if field.alias]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(current.model_fields))})"


def line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The 1-based YAML line of the deepest node on the key path that exists in the file."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
