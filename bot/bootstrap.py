"""The composition root: the only place that reads settings to build adapters and wire them."""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TextIO, cast

import structlog
from fastapi import FastAPI
from slack_sdk import WebClient
from sqlalchemy.engine import Engine, make_url

from bot.adapters.console import ConsoleNotifier
from bot.adapters.embedded import NoAppliedTimes, NoForge
from bot.adapters.export.render import ExportRenderer
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.adapters.github import AppliedFrom, GitHubForge, make_client
from bot.adapters.prometheus import PrometheusQuery, PrometheusRevisions, RevisionQuery
from bot.adapters.slack.delivery import SlackDelivery, SlackNotifier
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.leader import PostgresLeader
from bot.adapters.storage.store import SqlStore
from bot.config import ConfigError, LoggingSettings, Problem, Settings, load_playbooks
from bot.domain.errors import StorageUnavailable
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Delivery
from bot.domain.playbooks import Playbook
from bot.domain.ports import (
    AppliedTimes,
    Clock,
    Forge,
    GitRepos,
    MetricsQuery,
    Notifier,
    PullRequestRef,
    PullRequestStatus,
    Store,
)
from bot.entrypoints.charts import review_files
from bot.entrypoints.context import AppContext, Readiness, SlackParts
from bot.entrypoints.http import create_http_app
from bot.entrypoints.ingest_queue import IngestQueue
from bot.entrypoints.metrics import Metrics
from bot.entrypoints.slack_app import build_slack_app
from bot.entrypoints.webhook_auth import PageLinks
from bot.services.chat import ChatCommands
from bot.services.incidents import get_incident
from bot.services.ingest import IngestOutcome, ingest_deliveries
from bot.services.notify import incident_message

if TYPE_CHECKING:
    from bot.adapters.gitlab import GitLabForge


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    ctx: AppContext
    http: FastAPI
    engine: Engine | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()
        if self.ctx.slack is not None:
            self.ctx.slack.close()
        self.ctx.ingest_queue.close()
        self.ctx.work_executor.shutdown(wait=True)
        if self.engine is not None:
            self.engine.dispose()


def build(
    settings: Settings,
    *,
    store: Store | None = None,
    playbooks: list[Playbook] | None = None,
    clock: Clock | None = None,
    git: GitRepos | None = None,
    notifier: Notifier | None = None,
    forge: Forge | None = None,
    applied: AppliedTimes | None = None,
    work_executor: Executor | None = None,
    slack_client: WebClient | None = None,
    metrics_query: MetricsQuery | None = None,
    upgrade_sqlite: bool = True,
) -> App:
    """Wire the whole app; pass fakes for any part to replace it (tests build it in one line)."""
    engine: Engine | None = None
    readiness: Callable[[], Readiness]
    if store is None:
        engine = create_engine(settings.storage.url)
        if upgrade_sqlite and engine.dialect.name == "sqlite":
            migrate.upgrade(engine)
        sql_store = SqlStore(engine)
        store = sql_store
        readiness = _sql_readiness(sql_store, engine)
    else:
        readiness = lambda: Readiness(True, "storage provided by the caller")  # noqa: E731
    if playbooks is None:
        playbooks = load_playbooks(
            settings.playbooks_dir, known_repos=[repo.name for repo in settings.repos]
        )
    metrics = Metrics(github=any(repo.forge == "github" for repo in settings.repos),
                      gitlab=any(repo.forge == "gitlab" for repo in settings.repos))
    clock = clock or utc_now
    if forge is None or applied is None:
        built_forge, built_applied = build_forge(settings, metrics)
        forge, applied = forge or built_forge, applied or built_applied
    ctx = AppContext(
        settings=settings,
        store=store,
        playbooks=playbooks,
        clock=clock,
        readiness=readiness,
        git=git or build_git(settings),
        notifier=notifier or ConsoleNotifier(as_json=settings.logging.format == "json"),
        forge=forge,
        applied=applied,
        metrics=metrics,
        ingest_queue=IngestQueue(partial(_record_deliveries, store=store, playbooks=playbooks,
                                         policy=settings.incidents, clock=clock)),
        work_executor=work_executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="work"),
        links=PageLinks(settings.api.link_secret.get_secret_value().encode() if settings.api.link_secret
                        else secrets.token_bytes(32), settings.api.link_lifetime),
        export=ExportRenderer(settings.export.templates_dir),
    )
    if metrics_query is None and settings.prometheus.url:
        metrics_query = PrometheusQuery(settings.prometheus.url, timeout=settings.prometheus.timeout.total_seconds(),
                                        generators=settings.prometheus.generators)
    ctx.metrics_query = metrics_query
    if settings.chat.kind == "slack":
        ctx.slack = build_slack(ctx, client=slack_client)
    return App(ctx=ctx, http=create_http_app(ctx), engine=engine)


def elect_leader(app: App) -> None:
    """For `serve`: on PostgreSQL, replicas elect the one that runs the scheduled jobs with an
    advisory lock; on SQLite the one process leads. (Commands other than `serve` never take part.)"""
    if app.engine is None or app.engine.dialect.name != "postgresql":
        return
    leader = PostgresLeader(app.engine, interval=app.ctx.settings.scheduler.leader_interval).start()
    app.ctx.leader = leader
    app.closers.append(leader.close)


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
    return GitMirrors(specs, mirror_dir=settings.git.mirror_dir)


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

    def access(self, repo: str) -> str:
        forge = self._for(repo)
        access = getattr(forge, "access", None)
        return access(repo) if access is not None else f"{repo} has no forge"

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
        github = GitHubForge(client, repos=on_github, applied=applied_from, observe=metrics.observe_github,
                             max_wait=max_wait, backoff=min(0.5, max_wait / 20))
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


def build_slack(ctx: AppContext, *, client: WebClient | None = None) -> SlackParts:
    """The Slack app, its delivery and its notifier, over an already-built context."""
    slack = ctx.settings.slack
    problems = [Problem("config", key, reason) for key, reason in slack.problems()
                if key in ("slack.bot_token", "slack.channel")]
    if problems:
        raise ConfigError(problems)
    assert slack.bot_token is not None
    client = client or WebClient(token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=10)
    by_name = {p.name: p for p in ctx.playbooks}

    def channel_for(playbook: str | None) -> str | None:
        found = by_name.get(playbook or "")
        return (found.chat.channel if found and found.chat.channel else None) or slack.channel

    def links_for(incident_id: int) -> list[tuple[str, str]]:
        incident = ctx.store.run(lambda tx: tx.incidents.get(incident_id))
        found = by_name.get(incident.playbook or "") if incident else None
        links = [("Runbook", found.runbook)] if found and found.runbook else []
        page = ctx.page_url(incident_id)
        return links + ([("Incident page", page)] if page else [])

    def thread_files(incident_id: int) -> list[tuple[str, bytes]]:
        """The chart and the post-mortem draft for the thread when the incident resolves."""
        view = get_incident(store=ctx.store, incident_id=incident_id)
        markdown, chart = review_files(ctx, view, f"{view.incident.ref}.png")
        return [(f"{view.incident.ref}.png", chart), (f"{view.incident.ref}.md", markdown)]

    delivery = SlackDelivery(store=ctx.store, client=client, clock=ctx.clock, channel_for=channel_for,
                             links_for=links_for, may_deliver=lambda: ctx.leader.is_leader(), review_files=thread_files,
                             channel_rate=slack.channel_rate, claim=ctx.settings.scheduler.follow_up_lease,
                             describe=lambda incident_id: incident_message(store=ctx.store, incident_id=incident_id))
    ctx.notifier = SlackNotifier(store=ctx.store, kick=delivery.kick, clock=ctx.clock)
    commands = ChatCommands(
        store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier, playbooks=ctx.playbooks,
        clock=ctx.clock, responders=tuple(slack.responders), applied=ctx.applied,
        import_window=ctx.settings.git.import_window, page_url=ctx.page_url, metrics=ctx.metrics_query,
        markdown=ctx.export.markdown, export_links=ctx.export_links)
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
    listeners = ThreadPoolExecutor(max_workers=slack.workers, thread_name_prefix="slack-listener")
    slow = ThreadPoolExecutor(max_workers=slack.workers, thread_name_prefix="slack-work")
    app = build_slack_app(commands=commands, client=client, signing_secret=secret or "unused-in-socket-mode",
                          slash=slack.command, listeners=listeners, slow=slow)
    return SlackParts(app=app, delivery=delivery, signing_secret=secret, listeners=listeners, slow=slow)


def _record_deliveries(deliveries: Sequence[Delivery], *, store: Store, playbooks: Sequence[Playbook],
                       policy: IncidentPolicy, clock: Clock) -> list[IngestOutcome]:
    return ingest_deliveries(store=store, deliveries=deliveries, playbooks=playbooks, policy=policy, now=clock())


def _sql_readiness(store: SqlStore, engine: Engine) -> Callable[[], Readiness]:
    def check() -> Readiness:
        try:
            store.ping()
            current, head = migrate.current_revision(engine), migrate.head_revision()
        except StorageUnavailable as exc:
            return Readiness(False, f"database unreachable: {exc}")
        if current != head:
            return Readiness(False, f"schema at {current or 'nothing'}, code needs {head}: "
                                    "run `backout db upgrade`")
        return Readiness(True, f"database reachable, schema at {head}")

    return check


def upgrade_database(settings: Settings) -> str | None:
    """`backout db upgrade`: migrate the configured database to the newest schema."""
    engine = create_engine(settings.storage.url)
    try:
        migrate.upgrade(engine)
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def describe_storage(settings: Settings) -> str:
    """The storage URL with any password hidden."""
    return make_url(settings.storage.url).render_as_string(hide_password=True)


def configure_logging(settings: LoggingSettings) -> None:
    """Structured logs to stderr: JSON in production, readable text on a terminal. Backout's own
    events and the standard library's records (uvicorn, alembic, slack_sdk) go through the one
    renderer, so with `format: json` every line is JSON with `level`, `timestamp` and `logger`."""
    level = getattr(logging, settings.level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(cast(TextIO, _STDERR))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([structlog.processors.format_exc_info] if settings.format == "json" else []), renderer],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("github").setLevel(max(level, logging.WARNING))
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))  # it logs every run at INFO
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    # Never debug: at that level bolt and slack_sdk log request bodies (tokens, response_url).
    for name in ("slack_bolt", "slack_sdk", "bot.slack"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # to the root handler, not uvicorn's own
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Cached: without it every call binds a new logger (a tenth of a webhook's time).
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """sys.stderr as it is at each write, so whoever swaps it later (a test runner) is obeyed
    by loggers that were cached before."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _Stderr()
