"""Git and the forges from the settings: the mirrors, GitHub and GitLab by repository, and where
applied times come from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from bot.adapters.embedded import NoAppliedTimes, NoForge
from bot.adapters.git.host import Deadlines
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.adapters.github import AppliedFrom, GitHubForge, make_client
from bot.adapters.github_checks import installation_permissions
from bot.adapters.prometheus import PrometheusRevisions, RevisionQuery
from bot.config import ConfigError, Problem, Settings
from bot.domain.errors import UpstreamError
from bot.domain.forge_events import RequestChanged
from bot.domain.ports import (
    AppliedTimes,
    Forge,
    MergeState,
    Merging,
    OpenRequests,
    PullRequestRef,
    PullRequestStatus,
)
from bot.domain.review_checks import ReviewCheck
from bot.entrypoints.metrics import Metrics

if TYPE_CHECKING:
    from bot.adapters.gitlab import GitLabForge


def build_git(settings: Settings) -> GitMirrors:
    """A mirror per configured repository; credentials stay inside each repository's runner."""
    specs = {
        repo.name: RepoSpec(
            name=repo.name, url=repo.url, branch=repo.branch,
            runner=GitRunner(
                token=repo.token.get_secret_value() if repo.token else None,
                timeout=settings.git.timeout.total_seconds(),
                author_name=settings.git.author_name, author_email=settings.git.author_email,
            ),
        )
        for repo in settings.repos
    }
    git = settings.git
    deadlines = Deadlines(connect=git.connect_timeout.total_seconds(), stall=git.stall_timeout.total_seconds(),
                          pause=git.retry_after.total_seconds())
    return GitMirrors(specs, mirror_dir=git.mirror_dir, deadlines=deadlines)


class AppliedTimesByRepo:
    """Routes each repository to the adapter that knows its applied times."""

    def __init__(self, sources: dict[str, AppliedTimes]) -> None:
        self._sources = sources

    def source(self, repo: str) -> str | None:
        found = self._sources.get(repo)
        return found.source(repo) if found else None

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        found = self._sources.get(repo)
        return found.applied_at(repo, shas, since=since) if found else {}


class ForgesByRepo:
    """Routes each repository to the forge that hosts it (GitHub, GitLab), or to none."""

    def __init__(self, forges: Sequence[Forge]) -> None:
        self._forges = list(forges)
        self._none = NoForge()

    def _for(self, repo: str) -> Forge:
        return next((forge for forge in self._forges if forge.handles(repo)), self._none)

    def handles(self, repo: str) -> bool:
        return self._for(repo).handles(repo)

    def names_request(self, repo: str, ref: str) -> bool:
        return self._for(repo).names_request(repo, ref)

    def request_noun(self, repo: str) -> str:
        return self._for(repo).request_noun(repo)

    def access(self, repo: str, *, review: bool = False) -> str:
        forge = self._for(repo)
        access = getattr(forge, "access", None)
        return access(repo, review=review) if access is not None else f"{repo} has no forge"

    def open_pull_request(self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool,
                          labels: Sequence[str], reviewers: Sequence[str]) -> PullRequestRef:
        return self._for(repo).open_pull_request(repo, head=head, base=base, title=title, body=body, draft=draft,
                                                 labels=labels, reviewers=reviewers)

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        return self._for(repo).pull_request_status(repo, number)

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        return self._for(repo).comment(repo, number, body=body, marker=marker, comment_id=comment_id)

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        return self._for(repo).revert_dry_run(repo, sha, branch=branch)

    def merge_state(self, repo: str, number: int) -> MergeState:
        return self._merging(repo).merge_state(repo, number)

    def merge(self, repo: str, number: int, *, sha: str, message: str) -> MergeState:
        return self._merging(repo).merge(repo, number, sha=sha, message=message)

    def _merging(self, repo: str) -> Merging:
        forge = self._for(repo)
        if not isinstance(forge, Merging):
            raise UpstreamError(f"{repo} is on no forge Backout can merge on (GitHub or GitLab)")
        return forge

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        self._for(repo).mark_ready(repo, number, reviewers=reviewers)

    def review_check(self, repo: str, *, sha: str, check: ReviewCheck) -> None:
        self._for(repo).review_check(repo, sha=sha, check=check)

    def open_requests(self, repo: str) -> list[RequestChanged]:
        forge = self._for(repo)
        return forge.open_requests(repo) if isinstance(forge, OpenRequests) else []


def build_forge(settings: Settings, metrics: Metrics) -> tuple[Forge, AppliedTimes]:
    """GitHub for repositories with `forge: github`, GitLab for `forge: gitlab`; Prometheus for
    `applied.source: prometheus`."""
    on_github = {repo.name: repo.github_repo for repo in settings.repos
                 if repo.forge == "github" and repo.github_repo}
    forges: list[Forge] = []
    sources: dict[str, AppliedTimes] = {}
    if on_github:
        gh = settings.github
        if gh.problems():
            raise ConfigError([Problem("config", key, reason) for key, reason in gh.problems()])
        key = None
        if gh.private_key_file is not None:
            try:
                key = gh.private_key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([Problem("config", "github.private_key_file",
                                           f"cannot read {gh.private_key_file}: {exc.strerror}")]) from None
        client = make_client(api_url=gh.api_url, token=gh.token.get_secret_value() if gh.token else None,
                             app_id=gh.app_id, private_key=key, installation_id=gh.installation_id,
                             throttle=gh.throttle)
        applied_from = {
            repo.name: AppliedFrom(kind=repo.applied.source, environment=repo.applied.environment,
                                   context=repo.applied.context or "")
            for repo in settings.repos
            if repo.applied and repo.applied.source in ("deployments", "status")
        }
        max_wait = gh.max_wait.total_seconds()
        installation = None
        if gh.token is None and gh.app_id and key and gh.installation_id:
            installation = installation_permissions(api_url=gh.api_url, app_id=gh.app_id, private_key=key,
                                                    installation_id=gh.installation_id)
        github = GitHubForge(client, repos=on_github, applied=applied_from, observe=metrics.observe_github,
                             max_wait=max_wait, backoff=min(0.5, max_wait / 20), as_app=gh.token is None,
                             installation=installation)
        forges.append(github)
        sources.update({name: github for name in applied_from})
    gitlab = _gitlab_forge(settings, metrics)
    if gitlab is not None:
        forges.append(gitlab)
        sources.update({repo.name: gitlab for repo in settings.repos
                        if repo.applied and repo.applied.source == "environments"})
    queries = {repo.name: RevisionQuery(query=repo.applied.query or "", label=repo.applied.label)
               for repo in settings.repos if repo.applied and repo.applied.source == "prometheus"}
    if queries and settings.prometheus.url:
        revisions = PrometheusRevisions(settings.prometheus.url, queries=queries,
                                        timeout=settings.prometheus.timeout.total_seconds())
        sources.update({name: revisions for name in queries})
    forge: Forge = NoForge() if not forges else forges[0] if len(forges) == 1 else ForgesByRepo(forges)
    return forge, (AppliedTimesByRepo(sources) if sources else NoAppliedTimes())


def _gitlab_forge(settings: Settings, metrics: Metrics) -> GitLabForge | None:
    on_gitlab = {repo.name: repo.gitlab_project for repo in settings.repos
                 if repo.forge == "gitlab" and repo.gitlab_project}
    if not on_gitlab:
        return None
    from bot.adapters.gitlab import GitLabForge  # python-gitlab is imported only by those who use it
    from bot.adapters.gitlab import make_client as make_gitlab_client

    gl = settings.gitlab
    if gl.problems():
        raise ConfigError([Problem("config", key, reason) for key, reason in gl.problems()])
    assert gl.token is not None
    client = make_gitlab_client(url=gl.url, token=gl.token.get_secret_value(), timeout=gl.timeout.total_seconds())
    environments = {repo.name: repo.applied.environment for repo in settings.repos
                    if repo.applied and repo.applied.source == "environments"}
    max_wait = gl.max_wait.total_seconds()
    return GitLabForge(client, projects=on_gitlab, environments=environments, observe=metrics.observe_gitlab,
                       max_wait=max_wait, backoff=min(0.5, max_wait / 20))
