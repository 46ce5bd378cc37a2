"""Settings: one typed tree from YAML, `BACKOUT_*` environment overrides and `*_file` secrets;
and the playbooks folder, loaded and validated.

The models, one module per section: `server` (server, webhook auth, API, scheduler, logging),
`storage`, `git` (repositories, mirrors, GitHub, GitLab), `chat` (console, Slack),
`controllers` (Flux, Argo CD), `prometheus`, `pagerduty`, `export`; `section` is their base and
`settings` the root `Settings` that holds them. Apart from the models: `loading` (finding the
file, YAML, environment, secret files, relative paths, problems with file, key and line),
`playbooks` (the playbooks folder), `checks` (warnings and what stops `serve`) and `problems`
(`Problem`, `ConfigError`).

May import `bot.domain` (the models it validates into) and pydantic, pydantic-settings and yaml;
only `bootstrap`, `cli`, `demo` and `entrypoints` import it.
"""

from bot.config.chat import ChatSettings, SlackSettings
from bot.config.checks import config_warnings, playbook_warnings, serve_problems
from bot.config.controllers import ArgoCDSettings, FluxSettings
from bot.config.export import ExportSettings, PostmortemSettings
from bot.config.git import AppliedSettings, GithubSettings, GitlabSettings, GitSettings, RepoSettings
from bot.config.loading import DEFAULT_CONFIG, find_config_file, load_settings
from bot.config.pagerduty import PagerDutySettings
from bot.config.playbooks import load_playbooks
from bot.config.problems import ConfigError, Problem
from bot.config.prometheus import PrometheusSettings
from bot.config.section import Section
from bot.config.server import (
    AlertmanagerSettings,
    ApiSettings,
    ApiToken,
    LoggingSettings,
    SchedulerSettings,
    ServerSettings,
)
from bot.config.settings import Settings
from bot.config.storage import StorageSettings

__all__ = [
    "DEFAULT_CONFIG",
    "AlertmanagerSettings",
    "ApiSettings",
    "ApiToken",
    "AppliedSettings",
    "ArgoCDSettings",
    "ChatSettings",
    "ConfigError",
    "ExportSettings",
    "FluxSettings",
    "GitSettings",
    "GithubSettings",
    "GitlabSettings",
    "LoggingSettings",
    "PagerDutySettings",
    "PostmortemSettings",
    "Problem",
    "PrometheusSettings",
    "RepoSettings",
    "SchedulerSettings",
    "Section",
    "ServerSettings",
    "Settings",
    "SlackSettings",
    "StorageSettings",
    "config_warnings",
    "find_config_file",
    "load_playbooks",
    "load_settings",
    "playbook_warnings",
    "serve_problems",
]
