"""Settings: one typed tree from YAML, `BACKOUT_*` environment overrides and `*_file` secrets.

Also loads and validates playbooks, reporting every problem with its file, key path and line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.domain.durations import Duration
from bot.domain.incidents import IncidentPolicy
from bot.domain.playbooks import Playbook, RepoRole

DEFAULT_CONFIG = Path("config.yaml")
# False while loading settings for a command that uses no secret: an unreadable `*_file` is
# then left unset instead of refused (read commands run where the secrets are not mounted).
_SECRETS_NEEDED: ContextVar[bool] = ContextVar("secrets_needed", default=True)
# Sections whose secret files are not needed by this config (Slack when chat.kind is not slack,
# GitHub when no repository is on GitHub): a file they name that is missing is no error.
_UNUSED_SECTIONS: ContextVar[frozenset[str]] = ContextVar("unused_sections", default=frozenset())


class Section(BaseModel):
    """A settings section: unknown keys are refused; `X_file` fills the secret `X`."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _secret_file_readable(cls, value: Any, info: ValidationInfo) -> Any:
        """A `*_file` that cannot be read is an error at its own key (and line)."""
        if not (info.field_name or "").endswith("_file") or not isinstance(value, Path):
            return value
        if not _SECRETS_NEEDED.get() or cls.__name__ in _UNUSED_SECTIONS.get():
            return value
        try:
            text = value.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        if not text.strip():
            raise ValueError(f"{value} is empty")
        return value

    @model_validator(mode="after")
    def _read_secret_files(self) -> Section:
        for name in type(self).model_fields:
            if not name.endswith("_file") or name.removesuffix("_file") not in type(self).model_fields:
                continue
            path = getattr(self, name)
            target = name.removesuffix("_file")
            if path is None:
                continue
            if getattr(self, target) is not None:
                raise ValueError(f"set either {target} or {name}, not both")
            try:  # readable unless not needed here: _secret_file_readable said so at the key
                secret = Path(path).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if secret:
                setattr(self, target, SecretStr(secret))
        return self


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    public_url: str | None = Field(default=None, pattern=r"^https?://")


class StorageSettings(Section):
    url: str = "sqlite:///backout.db"


class AlertmanagerSettings(Section):
    auth: Literal["bearer", "basic", "none"] | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None

    def problems(self) -> list[tuple[str, str]]:
        """What stops the webhook from being served safely, as (key, reason)."""
        if self.auth is None:
            return [("alertmanager.auth", "not set: choose bearer or basic with credentials, "
                     "or `none` explicitly to accept unauthenticated webhooks")]
        if self.auth == "bearer" and not self.bearer_token:
            return [("alertmanager.bearer_token", "auth is bearer but no token is set "
                     "(bearer_token, bearer_token_file or BACKOUT_ALERTMANAGER__BEARER_TOKEN)")]
        if self.auth == "basic" and not (self.basic_username and self.basic_password):
            return [("alertmanager.basic_password", "auth is basic but the username or "
                     "password is missing")]
        return []


class FluxSettings(Section):
    """The Flux webhook: a `generic-hmac` Provider's key, or a bearer token a `generic` one sends."""

    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None


class ArgoCDSettings(Section):
    """The Argo CD webhook: the bearer token its notifications `webhook` service sends."""

    token: SecretStr | None = None
    token_file: Path | None = None


class ApiSettings(Section):
    """Who may read the API and the incident pages (alerts, timelines, authors' emails) and use
    its writes: bearer tokens compared in constant time. `/healthz` and `/readyz` stay open."""

    auth: Literal["bearer", "none"] = "bearer"
    tokens: list[SecretStr] = Field(default_factory=list)
    token_file: Path | None = None  # one token a line
    metrics_public: bool = True  # /metrics without a token (Prometheus scrapes it)
    # Links Backout posts (Slack, pull requests) to /incidents/{id} carry a token signed with this
    # key that expires: a person opens them in a browser without a bearer header.
    link_secret: SecretStr | None = None
    link_secret_file: Path | None = None
    link_lifetime: Duration = timedelta(days=30)
    # How long signing in on /signin opens the pages in that browser (a cookie; reads only).
    session_lifetime: Duration = timedelta(hours=12)

    @model_validator(mode="after")
    def _read_token_file(self) -> ApiSettings:
        if self.token_file is None:
            return self
        try:
            lines = Path(self.token_file).read_text(encoding="utf-8").splitlines()
        except OSError:
            return self  # not needed here, or refused at api.token_file already
        found = [SecretStr(line.strip()) for line in lines if line.strip() and not line.startswith("#")]
        if not found:
            raise ValueError(f"token_file: {self.token_file} holds no token")
        self.tokens = [*self.tokens, *found]
        return self

    def warnings(self) -> list[tuple[str, str]]:
        """What works but will surprise someone, as (key, reason)."""
        found = []
        if self.auth == "bearer" and not self.tokens:
            found.append(("api.tokens", "no API token: every read of /api and the incident pages is refused "
                                        "(set api.tokens or api.token_file, or api.auth: none on a private network)"))
        if self.link_secret is None:
            found.append(("api.link_secret", "not set: the page links Backout posts stop opening after a restart"))
        return found


class AppliedSettings(Section):
    """Where the real applied time of each commit comes from; commit time + sync delay otherwise."""

    source: Literal["deployments", "status", "environments", "prometheus"]
    environment: str = "production"  # deployments: the GitHub environment; environments: the GitLab one
    context: str | None = None       # status: the commit status context the controller sets
    query: str | None = None         # prometheus: a query whose series carry the revision
    label: str = "revision"          # prometheus: the label that holds the applied sha

    @model_validator(mode="after")
    def _complete(self) -> AppliedSettings:
        if self.source == "status" and not self.context:
            raise ValueError("source status needs `context` (e.g. kustomize-controller/apps)")
        if self.source == "prometheus" and not self.query:
            raise ValueError("source prometheus needs `query`")
        return self


class RepoSettings(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    url: str = Field(min_length=1)
    branch: str = "main"
    forge: Literal["local", "github", "gitlab"] = "local"
    github_repo: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    # group/subgroup/name (any depth) or the project's numeric id
    gitlab_project: str | None = Field(default=None, pattern=r"^(\d+|[\w.-]+(/[\w.-]+)+)$")
    token: SecretStr | None = None
    token_file: Path | None = None
    applied: AppliedSettings | None = None
    # A token goes only over https; plain http with a token must be chosen for this repository.
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _token_only_over_https(self) -> RepoSettings:
        if self.token and self.url.lower().startswith("http://") and not self.allow_insecure_http:
            raise ValueError("a token is sent only over https: this url is http:// (use https, or set "
                             "allow_insecure_http: true for this repository if you must)")
        return self

    @model_validator(mode="after")
    def _forge_needs_a_name(self) -> RepoSettings:
        if self.forge == "github" and not self.github_repo:
            raise ValueError("forge github needs github_repo (owner/name)")
        if self.forge == "gitlab" and not self.gitlab_project:
            raise ValueError("forge gitlab needs gitlab_project (group/subgroup/name, or the numeric id)")
        if self.applied and self.applied.source in ("deployments", "status") and self.forge != "github":
            hint = " (on GitLab, use applied.source environments)" if self.forge == "gitlab" else ""
            raise ValueError(f"applied.source {self.applied.source} reads GitHub: set forge github{hint}")
        if self.applied and self.applied.source == "environments" and self.forge != "gitlab":
            hint = " (on GitHub, use applied.source deployments)" if self.forge == "github" else ""
            raise ValueError(f"applied.source environments reads GitLab deployments: set forge gitlab{hint}")
        return self


class GitSettings(Section):
    mirror_dir: Path = Path(".backout/mirrors")
    author_name: str = "Backout"
    author_email: str = "backout@localhost"
    timeout: Duration = timedelta(minutes=2)
    import_window: Duration = timedelta(days=7)
    refresh_every: Duration = timedelta(minutes=1)


class SchedulerSettings(Section):
    verify_every: Duration = timedelta(seconds=15)    # how often the key metric is checked after a rollback
    reminders_every: Duration = timedelta(seconds=30)  # how often unacknowledged incidents are looked at
    resolve_every: Duration = timedelta(seconds=30)    # how often incidents.clear_for is applied
    sweep_every: Duration = timedelta(seconds=15)      # how often follow-up work a crash left is finished
    # PostgreSQL: a replica that cannot renew the leader lock within this stops leading, and
    # another takes over within about this long after the leader dies.
    leader_interval: Duration = timedelta(seconds=15)
    # Work (investigate, announce, a chat message) claimed by a replica that died is taken over after this;
    # keep it above the longest investigation (a first clone, a slow forge).
    follow_up_lease: Duration = timedelta(minutes=2)
    push_retry_every: Duration = timedelta(seconds=30)  # reverts prepared while a Git host was down


class ChatSettings(Section):
    kind: Literal["console", "slack"] = "console"


class SlackSettings(Section):
    mode: Literal["socket", "http"] = "socket"
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    app_token: SecretStr | None = None
    app_token_file: Path | None = None
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://.*/$")
    channel: str | None = None
    command: str = Field(default="/incident", pattern=r"^/[a-z0-9_-]{1,31}$")
    responders: list[str] = Field(default_factory=list)  # user (U…) or group (S…) ids who may roll back
    workers: int = Field(default=16, ge=2, le=128)  # threads for work after the ack
    # Messages a second per channel (Slack allows about one, with short bursts of about ten).
    channel_rate: float = Field(default=1.0, gt=0, le=100)

    def problems(self) -> list[tuple[str, str]]:
        """What chat.kind slack cannot run without."""
        found = []
        if not self.bot_token:
            found.append(("slack.bot_token", "chat.kind is slack but no bot token is set"))
        if not self.channel:
            found.append(("slack.channel", "the default channel is needed for playbooks that name none"))
        if self.mode == "http" and not self.signing_secret:
            found.append(("slack.signing_secret", "HTTP mode verifies every request with it"))
        if self.mode == "socket" and not self.app_token:
            found.append(("slack.app_token", "Socket Mode needs an app-level token (xapp-…)"))
        return found


class GithubSettings(Section):
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://")
    token: SecretStr | None = None
    token_file: Path | None = None
    app_id: int | None = None
    private_key_file: Path | None = None
    installation_id: int | None = None
    throttle: bool = True          # PyGithub's pacing: 0.25 s between requests, 1 s between writes
    max_wait: Duration = timedelta(seconds=60)  # the longest Retry-After or reset Backout waits
    applied_window: Duration = timedelta(days=1)  # how far back applied times are looked up

    def problems(self) -> list[tuple[str, str]]:
        """What repositories with `forge: github` cannot run without."""
        if self.token or (self.app_id and self.private_key_file and self.installation_id):
            return []
        return [("github.token", "repositories with forge github need github.token (or token_file), "
                                 "or app_id, private_key_file and installation_id")]


class GitlabSettings(Section):
    url: str = Field(default="https://gitlab.com", pattern=r"^https?://")  # GitLab.com or self-managed
    token: SecretStr | None = None  # a project or group access token: api (or read_api + write_repository)
    token_file: Path | None = None
    max_wait: Duration = timedelta(seconds=60)  # the longest Retry-After or RateLimit-Reset Backout waits
    timeout: Duration = timedelta(seconds=15)

    def problems(self) -> list[tuple[str, str]]:
        """What repositories with `forge: gitlab` cannot run without."""
        if self.token:
            return []
        return [("gitlab.token", "repositories with forge gitlab need gitlab.token (or token_file): a project "
                                 "or group access token with the api scope")]


class PrometheusSettings(Section):
    url: str | None = Field(default=None, pattern=r"^https?://")
    timeout: Duration = timedelta(seconds=10)
    # The alert's onset: an alert is looked up (activeAt, its rule's `for`) in the Prometheus its
    # generatorURL names, only where Backout knows how to reach it. `url`'s own host needs no entry;
    # map the others (this Prometheus's --web.external-url, another Prometheus, a Thanos or Mimir
    # ruler) from their generatorURL host ("host" or "host:port") to the URL to ask.
    generators: dict[str, str] = {}

    @field_validator("generators")
    @classmethod
    def _generators_are_hosts_and_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for host, url in value.items():
            if not _HOST.fullmatch(host):
                raise ValueError(f"{host!r}: a generatorURL host is host or host:port, no scheme or path")
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"{host}: {url!r} is not an http(s) URL")
        return {host.lower(): url.rstrip("/") for host, url in value.items()}

    @model_validator(mode="after")
    def _generators_need_url(self) -> PrometheusSettings:
        if self.generators and not self.url:
            raise ValueError("generators needs prometheus.url (the Prometheus Backout queries)")
        return self


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")


class PostmortemSettings(Section):
    """Where resolved incidents' drafts are proposed as pull requests (or pushed branches)."""

    repo: str = Field(min_length=1)  # a name from `repos`
    path: str = Field(default="postmortems", pattern=r"^[\w.-]+(/[\w.-]+)*$")  # the folder in that repository
    branch_prefix: str = Field(default="backout/postmortem", pattern=r"^[\w.-]+(/[\w.-]+)*$")


class ExportSettings(Section):
    # A folder whose postmortem.md, incident.html or incidents.html replace the shipped templates
    # (bot/adapters/export/templates/), one by one.
    templates_dir: Path | None = None
    postmortem: PostmortemSettings | None = None


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class Settings(BaseSettings):
    """The whole configuration. Environment variables override the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix="BACKOUT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    api: ApiSettings = ApiSettings()
    flux: FluxSettings = FluxSettings()
    argocd: ArgoCDSettings = ArgoCDSettings()
    incidents: IncidentPolicy = IncidentPolicy()
    playbooks_dir: Path = Path("playbooks")
    repos: list[RepoSettings] = Field(default_factory=list)
    git: GitSettings = GitSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    chat: ChatSettings = ChatSettings()
    slack: SlackSettings = SlackSettings()
    github: GithubSettings = GithubSettings()
    gitlab: GitlabSettings = GitlabSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    export: ExportSettings = ExportSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values; the environment must win over it.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _sources_are_configured(self) -> Settings:
        for repo in self.repos:
            if repo.applied and repo.applied.source == "prometheus" and not self.prometheus.url:
                raise ValueError(f"repos {repo.name}: applied.source prometheus needs prometheus.url")
        return self

    @model_validator(mode="after")
    def _unique_repo_names(self) -> Settings:
        names = [repo.name for repo in self.repos]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"repository names must be unique: {', '.join(duplicates)}")
        postmortem = self.export.postmortem
        if postmortem is not None and postmortem.repo not in names:
            raise ValueError(f"export.postmortem.repo {postmortem.repo!r} is not in repos "
                             f"(known: {', '.join(names) or 'none'})")
        return self


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class ConfigError(Exception):
    """The config or a playbook is invalid; each problem names its file, key and reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


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
    reset = _SECRETS_NEEDED.set(False)
    try:
        settings = _load_settings(path)  # first without secrets: which sections does it use?
    finally:
        _SECRETS_NEEDED.reset(reset)
    if not secrets:
        return settings
    unused = set()
    if settings.chat.kind != "slack":
        unused.add(SlackSettings.__name__)
    if not any(repo.forge == "github" for repo in settings.repos):
        unused.add(GithubSettings.__name__)
    if not any(repo.forge == "gitlab" for repo in settings.repos):
        unused.add(GitlabSettings.__name__)
    reset_unused = _UNUSED_SECTIONS.set(frozenset(unused))
    try:
        return _load_settings(path)
    finally:
        _UNUSED_SECTIONS.reset(reset_unused)


def _load_settings(path: Path | None) -> Settings:
    config_file = find_config_file(path)
    label = str(config_file) if config_file else "(built-in defaults and environment)"
    data, root = _read_yaml(config_file) if config_file else ({}, None)
    if not isinstance(data, dict):
        raise ConfigError([Problem(label, "", "the top level must be a mapping of settings")])
    if config_file is not None:
        data = _anchored(data, Settings, config_file.resolve().parent)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, file=label, root=root, model=Settings, env_prefix="BACKOUT_")) from None
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


def load_playbooks(directory: Path, *, known_repos: Iterable[str] | None = None) -> list[Playbook]:
    """Every `*.yaml`/`*.yml` in the folder, validated; all problems reported at once."""
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), "playbooks_dir", "is not a folder")])
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
    data, root = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "a playbook must be a mapping")])
    data.setdefault("name", path.stem)
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, file=str(path), root=root, model=Playbook)) from None
    if known_repos is not None:
        missing = [
            Problem(str(path), f"repos.{index}.repo",
                    f"{entry.repo!r} is not a repository in the config's `repos` "
                    f"(known: {', '.join(sorted(known_repos)) or 'none'})",
                    _line_of(root, ("repos", index, "repo")))
            for index, entry in enumerate(playbook.repos)
            if entry.repo not in known_repos
        ]
        if missing:
            raise ConfigError(missing)
    return playbook


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
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


def _problems(exc: ValidationError, *, file: str, root: yaml.Node | None,
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
            problems.append(Problem(file, key, reason, _line_of(root, loc)))
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


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
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


def config_warnings(settings: Settings, *, file: str) -> list[Problem]:
    """What `check` and `serve` point out without refusing to start."""
    found = settings.api.warnings()
    used = {repo.forge for repo in settings.repos}
    for forge, key, url, token in (("github", "github.api_url", settings.github.api_url, settings.github.token),
                                   ("gitlab", "gitlab.url", settings.gitlab.url, settings.gitlab.token)):
        host = urlsplit(url).hostname or ""
        if forge in used and token and url.lower().startswith("http://") and host not in _LOOPBACK:
            found.append((key, f"plain http to {host}: the {forge} token crosses the network readable; use https"))
    return [Problem(file, key, reason) for key, reason in found]


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def playbook_warnings(settings: Settings, playbooks: Sequence[Playbook], *, file: str) -> list[Problem]:
    """Playbooks that cannot do what they say: probes with no Prometheus to ask, a match that an
    earlier playbook already takes, controller events the config cannot authenticate, image bumps
    with no application repository to find their code in."""
    found = []
    folder = str(settings.playbooks_dir)
    if not settings.prometheus.url:
        for playbook in playbooks:
            if playbook.probes:
                found.append(Problem(folder, f"{playbook.name}.probes", "prometheus.url is not set in the config, "
                                     "so these probes never run"))
    for index, playbook in enumerate(playbooks):
        earlier = next((p for p in playbooks[:index] if p.match == playbook.match), None)
        if earlier is not None:
            found.append(Problem(folder, f"{playbook.name}.match", f"the same as playbook {earlier.name}'s, which "
                                 "comes first: alerts never reach this one (narrow its match)"))
    for playbook in playbooks:
        if not any(entry.role is RepoRole.APP for entry in playbook.repos):
            found.append(Problem(folder, f"{playbook.name}.repos", "names no application repository (a repos entry "
                                 "with role: app): when a suspect bumps an image, the code commits between the "
                                 "tags cannot be listed"))
    if any(p.gitops.flux for p in playbooks) and not (settings.flux.hmac_key or settings.flux.token):
        found.append(Problem(file, "flux.hmac_key", "playbooks name Flux objects, but /webhooks/flux has no key: "
                             "set flux.hmac_key_file (generic-hmac) or flux.token_file, or every event is refused"))
    if any(p.gitops.argocd for p in playbooks) and not settings.argocd.token:
        found.append(Problem(file, "argocd.token", "playbooks name Argo CD applications, but /webhooks/argocd has "
                             "no token: set argocd.token_file, or every notification is refused"))
    return found


def serve_problems(settings: Settings, *, file: str) -> list[Problem]:
    """What `serve` refuses to start with, beyond what validation already caught."""
    found = settings.alertmanager.problems()
    if settings.chat.kind == "slack":
        found += settings.slack.problems()
    if any(repo.forge == "github" for repo in settings.repos):
        found += settings.github.problems()
    if any(repo.forge == "gitlab" for repo in settings.repos):
        found += settings.gitlab.problems()
    return [Problem(file, key, reason) for key, reason in found]
