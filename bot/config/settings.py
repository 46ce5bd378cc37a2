"""The whole configuration: one `Settings` tree made of the sections, environment over YAML."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.config.chat import ChatSettings, SlackSettings
from bot.config.controllers import ArgoCDSettings, FluxSettings
from bot.config.export import ExportSettings
from bot.config.git import GithubSettings, GitlabSettings, GitSettings, RepoSettings
from bot.config.pagerduty import PagerDutySettings
from bot.config.prometheus import PrometheusSettings
from bot.config.server import AlertmanagerSettings, ApiSettings, LoggingSettings, SchedulerSettings, ServerSettings
from bot.config.storage import StorageSettings
from bot.domain.incidents import IncidentPolicy
from bot.domain.rooms import UpdateReminders


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
    reminders: UpdateReminders = UpdateReminders()  # status updates overdue, by severity
    playbooks_dir: Path = Path("playbooks")
    repos: list[RepoSettings] = Field(default_factory=list)
    git: GitSettings = GitSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    chat: ChatSettings = ChatSettings()
    slack: SlackSettings = SlackSettings()
    github: GithubSettings = GithubSettings()
    gitlab: GitlabSettings = GitlabSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    pagerduty: PagerDutySettings = PagerDutySettings()
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
