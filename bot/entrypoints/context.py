"""What the entrypoints are handed by `bootstrap.build()`: the wired parts, nothing global."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from slack_bolt import App

from bot.adapters.embedded import SingleReplica
from bot.adapters.export.render import ExportRenderer
from bot.adapters.slack.delivery import SlackDelivery
from bot.config import Settings
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import (
    AppliedTimes,
    ArgoCdApi,
    Clock,
    Forge,
    GitRepos,
    LeaderGate,
    MetricsQuery,
    Notifier,
    Pager,
    Store,
)
from bot.entrypoints.batch_queue import ControllerQueue, IngestQueue
from bot.entrypoints.links import PageLinks, incident_page, signed_page
from bot.entrypoints.metrics import Metrics
from bot.entrypoints.renderings import ChartWorkers, Renderings
from bot.services.export import ExportLinks
from bot.services.held_events import HeldWork
from bot.services.reviews import ReviewWork


def export_links(settings: Settings, *, page: Callable[[int], str | None]) -> ExportLinks:
    """Commits, branches and pull requests on GitHub (from `github.api_url` and each repository's
    `github_repo`) or merge requests on GitLab (`gitlab.url` and `gitlab_project`, when it is a
    path: a numeric id has no web address), and the incident's page."""
    github = github_web_url(settings.github.api_url)
    gitlab = settings.gitlab.url.rstrip("/")
    web = {repo.name: f"{github}/{repo.github_repo}" for repo in settings.repos
           if repo.forge == "github" and repo.github_repo}
    web |= {repo.name: f"{gitlab}/{repo.gitlab_project}/-" for repo in settings.repos
            if repo.forge == "gitlab" and repo.gitlab_project and not repo.gitlab_project.isdigit()}
    forges = {repo.name: repo.forge for repo in settings.repos}

    def commit(repo: str, sha: str) -> str | None:
        return f"{web[repo]}/commit/{sha}" if repo in web else None

    def branch(repo: str, name: str) -> str | None:
        return f"{web[repo]}/tree/{name}" if repo in web else None

    def request(repo: str, ref: str) -> str | None:
        """"!12" is a GitLab merge request, "#12" a GitHub pull request: on a forge of that kind."""
        kind = forges.get(repo)
        if repo not in web or (kind == "gitlab") != ref.startswith("!"):
            return None
        return f"{web[repo]}/merge_requests/{ref[1:]}" if kind == "gitlab" else f"{web[repo]}/pull/{ref[1:]}"

    return ExportLinks(commit=commit, branch=branch, page=page, request=request)


def github_web_url(api_url: str) -> str:
    """https://github.com for api.github.com; https://host for GitHub Enterprise's /api/v3."""
    base = api_url.rstrip("/")
    if base in ("https://api.github.com", "http://api.github.com"):
        return "https://github.com"
    return base.removesuffix("/api/v3")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


@dataclass
class SlackParts:
    """The Slack side, when chat.kind is slack."""

    app: App
    delivery: SlackDelivery
    signing_secret: str
    listeners: ThreadPoolExecutor  # bolt's listener pool: each ack, then the quick answers
    slow: ThreadPoolExecutor  # rollbacks and branches: git and GitHub, seconds each

    def close(self) -> None:
        self.listeners.shutdown(wait=True)
        self.slow.shutdown(wait=True)
        self.delivery.close()


@dataclass
class AppContext:
    settings: Settings
    store: Store
    playbooks: list[Playbook]
    clock: Clock
    readiness: Callable[[], Readiness]
    git: GitRepos
    notifier: Notifier
    forge: Forge
    applied: AppliedTimes
    # Webhook writes, off the event loop: one writer thread that commits waiting deliveries together.
    ingest_queue: IngestQueue
    # Flux and Argo CD events, the same way: a storm of them is written in batches, in order.
    controller_queue: ControllerQueue
    slack: SlackParts | None = None
    metrics_query: MetricsQuery | None = None
    pager: Pager | None = None  # PagerDuty, when pagerduty.routing_key or api_token is set
    argo: ArgoCdApi | None = None  # Argo CD's API (outbound), when argocd.api_url and api_token_file are set
    leader: LeaderGate = field(default_factory=lambda: SingleReplica())
    # Controller events held for a fetch: set by the GitOps webhooks, settled by them and the scheduler's sweep.
    held: HeldWork | None = None
    reviews: ReviewWork | None = None  # review risk, when a repository sets review.risk (bootstrap)
    # Investigations (git fetch, ranking, actions) run here after the webhook has answered.
    work_executor: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="work")
    )
    # Waiting for a fetch that a webhook or an investigation stopped waiting for (never the threads above).
    git_waits: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="git-wait")
    )
    metrics: Metrics = field(default_factory=lambda: Metrics())
    # bootstrap gives the shared one (`page_links`); this default, a key of this process's own, is for tests.
    links: PageLinks = field(default_factory=lambda: PageLinks(secrets.token_bytes(32), timedelta(days=30)))
    # The export's templates: the shipped ones, each replaced by export.templates_dir's of that name.
    export: ExportRenderer = field(default_factory=ExportRenderer)
    # The incident pages and charts served over HTTP: drawn in worker processes, kept per version.
    chart_workers: ChartWorkers = field(default_factory=ChartWorkers)
    renderings: Renderings = field(default_factory=Renderings)

    def export_links(self) -> ExportLinks:
        """Links for the export: commits and branches on GitHub, the incident's page."""
        return export_links(self.settings, page=self.page_url)

    def page_url(self, incident_id: int) -> str | None:
        """The incident's page, when the server's public URL is configured, with no token: for
        pull requests, drafts and exports, which outlive any token (a signed-in browser opens it)."""
        return incident_page(self.settings, incident_id)

    def signed_page_url(self, incident_id: int) -> str | None:
        """The page with a fresh signed token that opens it without signing in: for chat and the CLI."""
        return signed_page(self.settings, self.links, incident_id, now=self.clock())

    def reviewers(self, playbook_name: str | None) -> tuple[str, ...]:
        playbook = playbook_named(self.playbooks, playbook_name)
        return playbook.actions.reviewers if playbook else ()
