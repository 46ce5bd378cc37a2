"""Git and forge settings: the watched repositories, the local mirrors, GitHub and GitLab."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from bot.config.section import Section
from bot.domain.durations import Duration


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


class RepoReview(Section):
    """Review risk (README, Review risk): open pull (merge) requests on this repository that touch
    what caused incidents get a `backout/risk` check and one comment."""

    risk: bool = False


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
    review: RepoReview = RepoReview()
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
        if self.review.risk and self.forge == "local":
            raise ValueError("review.risk posts a check on pull (merge) requests: set forge github or gitlab")
        if self.applied and self.applied.source == "environments" and self.forge != "gitlab":
            hint = " (on GitHub, use applied.source deployments)" if self.forge == "github" else ""
            raise ValueError(f"applied.source environments reads GitLab deployments: set forge gitlab{hint}")
        return self


class GitSettings(Section):
    mirror_dir: Path = Path(".backout/mirrors")
    author_name: str = "Backout"
    author_email: str = "backout@localhost"
    timeout: Duration = timedelta(minutes=2)
    # Backout's own deadline for a Git host to accept a connection (git has no connect timeout):
    # one that drops packets fails after this, not after `timeout`.
    connect_timeout: Duration = timedelta(seconds=10)
    # A call that receives nothing for this long is abandoned (http.lowSpeedTime, ssh keep-alives).
    stall_timeout: Duration = timedelta(seconds=30)
    # After a call timed out, the host is left alone this long ("not answering since"): the mirror serves.
    retry_after: Duration = timedelta(minutes=1)
    # How long a new incident's ranking, or a controller's webhook, waits for a fetch before it answers
    # from the mirror; the fetch goes on, and what it brings is ranked when it lands. 0: never wait.
    fetch_wait: Duration = timedelta(seconds=2)
    # A controller event answered while its revision was being fetched is kept until the fetch brings it;
    # past this it is recorded anyway, its revision unknown to the mirror (its failure or recovery counts).
    hold_for: Duration = timedelta(hours=1)
    import_window: Duration = timedelta(days=7)
    refresh_every: Duration = timedelta(minutes=1)


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
    # The secret of the repository webhook (push, pull_request events) that /webhooks/github checks
    # in X-Hub-Signature-256; unset: the endpoint refuses every delivery and incident branches are polled.
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None

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
    # The secret token of the project webhook (push, merge request events) that /webhooks/gitlab
    # compares with X-Gitlab-Token; unset: the endpoint refuses every delivery and incident branches are polled.
    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None

    def problems(self) -> list[tuple[str, str]]:
        """What repositories with `forge: gitlab` cannot run without."""
        if self.token:
            return []
        return [("gitlab.token", "repositories with forge gitlab need gitlab.token (or token_file): a project "
                                 "or group access token with the api scope")]
