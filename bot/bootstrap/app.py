"""The app: `build(settings, **overrides)` wires every adapter into one context (pass fakes to replace
any part), and the database set-up `serve` and `db upgrade` need."""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection

import structlog
from fastapi import FastAPI
from slack_sdk import WebClient
from sqlalchemy.engine import Engine, make_url

from bot.adapters.argocd import ArgoCdClient
from bot.adapters.console import ConsoleNotifier
from bot.adapters.embedded import SingleReplica
from bot.adapters.export.render import ExportRenderer
from bot.adapters.pagerduty import PagerDutyPager
from bot.adapters.prometheus import PrometheusQuery
from bot.adapters.replica import take_name
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.leader import PostgresLeader
from bot.adapters.storage.store import SqlStore
from bot.adapters.storage.store_reviews import SqlReviews
from bot.bootstrap.forges import build_forge, build_git
from bot.bootstrap.logs import configure_logging
from bot.bootstrap.slack import build_slack
from bot.config import Settings, load_playbooks
from bot.domain.errors import StorageUnavailable
from bot.domain.gitops import ControllerEvent
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Delivery
from bot.domain.playbooks import Playbook
from bot.domain.ports import (
    AppliedTimes,
    ArgoCdApi,
    Clock,
    Forge,
    GitRepos,
    MetricsQuery,
    Notifier,
    Pager,
    RequestHeads,
    Store,
)
from bot.entrypoints.batch_queue import ControllerQueue, IngestQueue
from bot.entrypoints.context import AppContext, Readiness
from bot.entrypoints.http import create_http_app
from bot.entrypoints.links import page_links
from bot.entrypoints.metrics import Metrics
from bot.entrypoints.writer_process import ProcessRecorder, serve_batches
from bot.services.gitops import ControllerReport, record_controller_events
from bot.services.ingest import IngestOutcome, ingest_deliveries
from bot.services.reviews import ReviewWork

log = structlog.get_logger(__name__)
# Controller events written in one transaction at most: under 1,000 a second a batch is a few
# hundred milliseconds of work, so an event waits well under a second.
CONTROLLER_BATCH = 200
# Seconds the writer process may take over one batch: its fetch wait, SQLite's busy timeout and
# the batch itself, with room to spare; past it the batch is refused (503) and the writer restarted.
WRITER_TIMEOUT = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    ctx: AppContext
    http: FastAPI
    engine: Engine | None
    closers: list[Callable[[], None]] = field(default_factory=list)
    writer: ProcessRecorder[ControllerEvent, ControllerReport] | None = None

    def close(self) -> None:
        for close in self.closers:
            close()
        if self.ctx.slack is not None:
            self.ctx.slack.close()
        self.ctx.ingest_queue.close()
        self.ctx.controller_queue.close()
        if self.writer is not None:  # after the queue has handed it every batch waiting
            self.writer.close()
        self.ctx.chart_workers.close()
        self.ctx.work_executor.shutdown(wait=True)
        # A wait on a Git host ends within the git deadlines; closing does not wait for it.
        self.ctx.git_waits.shutdown(wait=False, cancel_futures=True)
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
    git_waits: Executor | None = None,
    slack_client: WebClient | None = None,
    metrics_query: MetricsQuery | None = None,
    pager: Pager | None = None,
    argo: ArgoCdApi | None = None,
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
    git = git or build_git(settings)
    ctx = AppContext(
        settings=settings,
        store=store,
        playbooks=playbooks,
        clock=clock,
        readiness=readiness,
        git=git,
        notifier=notifier or ConsoleNotifier(as_json=settings.logging.format == "json"),
        forge=forge,
        applied=applied,
        metrics=metrics,
        ingest_queue=IngestQueue(partial(_record_deliveries, store=store, playbooks=playbooks,
                                         policy=settings.incidents, clock=clock),
                                 alone=lambda delivery: bool(delivery.part_of)),  # a huge delivery's part
        controller_queue=ControllerQueue(partial(_record_controller_events, store=store, git=git, playbooks=playbooks,
                                                 settings=settings, clock=clock),
                                         max_batch=CONTROLLER_BATCH, name="controller-writer"),
        work_executor=work_executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="work"),
        git_waits=git_waits or ThreadPoolExecutor(max_workers=4, thread_name_prefix="git-wait"),
        links=page_links(settings, store=store, clock=clock),
        export=ExportRenderer(settings.export.templates_dir),
    )
    if metrics_query is None and settings.prometheus.url:
        metrics_query = PrometheusQuery(settings.prometheus.url, timeout=settings.prometheus.timeout.total_seconds(),
                                        generators=settings.prometheus.generators)
    ctx.metrics_query = metrics_query
    ctx.reviews = review_work(ctx) if any(repo.review.risk for repo in settings.repos) else None
    closers: list[Callable[[], None]] = []
    if pager is None and settings.pagerduty.configured:
        built_pager = _pagerduty(settings)
        pager = built_pager
        closers.append(built_pager.close)
    ctx.pager = pager
    argocd = settings.argocd
    if argo is None and argocd.api_configured and argocd.api_url and argocd.api_token:
        built_argo = ArgoCdClient(argocd.api_url, token=argocd.api_token.get_secret_value(),
                                  timeout=argocd.api_timeout.total_seconds(), ca_file=argocd.ca_file)
        argo = built_argo
        closers.append(built_argo.close)
    ctx.argo = argo
    if settings.chat.kind == "slack":
        ctx.slack = build_slack(ctx, client=slack_client)
    return App(ctx=ctx, http=create_http_app(ctx), engine=engine, closers=closers)


def review_work(ctx: AppContext) -> ReviewWork | None:
    """Review risk's parts: its queue and past causes in the database, request heads fetched into
    the mirrors (`serve` when a repository sets review.risk; `backout risk` for any)."""
    if not isinstance(ctx.store, SqlStore) or not isinstance(ctx.git, RequestHeads):
        log.warning("review_risk.off", detail="review.risk needs the SQL store and the git mirrors")
        return None
    reviews = SqlReviews(ctx.store)
    return ReviewWork(queue=reviews, causes=reviews, heads=ctx.git, forge=ctx.forge, playbooks=ctx.playbooks,
                      page_url=ctx.page_url)


def _pagerduty(settings: Settings) -> PagerDutyPager:
    """PagerDuty from its settings: pages and change events with a routing key, the on-call with
    a REST API key."""
    pd = settings.pagerduty
    return PagerDutyPager(routing_key=pd.routing_key.get_secret_value() if pd.routing_key else None,
                          api_token=pd.api_token.get_secret_value() if pd.api_token else None,
                          events_url=pd.events_url, api_url=pd.api_url, ca_file=pd.ca_file,
                          timeout=pd.timeout.total_seconds())


def start_replica(app: App) -> None:
    """For `serve`: take this process's replica name (kept beside `git.mirror_dir`, in the replica's
    own data folder: `.backout/replica` by default) and the name's next epoch, and free at once what
    the name's previous run held when it died (follow-up work, chat summaries being sent, held
    controller events being recorded, review heads). Claims of other replicas lapse after their lease."""
    name = take_name(app.ctx.settings.git.mirror_dir.parent)
    app.closers.append(name.close)
    app.ctx.leader = SingleReplica(name.name)
    if not isinstance(app.ctx.store, SqlStore):
        return
    holder, released = app.ctx.store.start_replica(name.name, at=app.ctx.clock())
    log.info("replica.started", replica=holder.name, epoch=holder.epoch, name_kept=name.kept,
             released_follow_ups=released.follow_ups, released_summaries=released.summaries,
             released_held_events=released.held_events, released_reviews=released.reviews)


def elect_leader(app: App) -> None:
    """For `serve`: on PostgreSQL, replicas elect the one that runs the scheduled jobs with an
    advisory lock; on SQLite the one process leads. (Commands other than `serve` never take part.)"""
    if app.engine is None or app.engine.dialect.name != "postgresql":
        return
    leader = PostgresLeader(app.engine, interval=app.ctx.settings.scheduler.leader_interval,
                            replica=app.ctx.leader.replica).start()
    app.ctx.leader = leader
    app.closers.append(leader.close)


def record_in_process(app: App) -> None:
    """For `serve` (`server.controller_writer: process`): controller events are recorded by a child
    process with its own database engine, Git mirrors' handle and playbooks, built from the same
    settings, so a storm's writing does not hold the interpreter lock the event loop answers with.
    Only for an app whose store comes from its settings (not a test's fake) and when Flux or Argo CD
    has credentials (else no event is accepted, and a process would idle); the writer reads the
    real clock, and its Git hosts' outages are its own (`/readyz` shows the serving process's)."""
    settings = app.ctx.settings
    if settings.server.controller_writer != "process" or app.engine is None or not _controllers_configured(settings):
        return
    writer: ProcessRecorder[ControllerEvent, ControllerReport] = ProcessRecorder(
        _controller_writer, (app.ctx.settings,), timeout=WRITER_TIMEOUT)
    writer.start()
    previous = app.ctx.controller_queue
    app.ctx.controller_queue = ControllerQueue(writer, max_batch=CONTROLLER_BATCH, name="controller-writer")
    app.writer = writer
    previous.close()


def _controllers_configured(settings: Settings) -> bool:
    """Flux or Argo CD can send events: without their credentials every event is refused (401)."""
    flux = settings.flux
    return bool(flux.secret_forms("hmac_key") or flux.token or settings.argocd.token)


def _controller_writer(pipe: Connection, settings: Settings) -> None:
    """The writer process's main: what `build` wires for the controller queue, from the settings."""
    configure_logging(settings.logging)
    engine = create_engine(settings.storage.url)
    try:
        playbooks = load_playbooks(settings.playbooks_dir, known_repos=[repo.name for repo in settings.repos])
        gc.freeze()  # as `serve` does: full collections walk only what the batches make
        serve_batches(pipe, partial(_record_controller_events, store=SqlStore(engine), git=build_git(settings),
                                    playbooks=playbooks, settings=settings, clock=utc_now))
    finally:
        engine.dispose()


def _record_deliveries(deliveries: Sequence[Delivery], *, store: Store, playbooks: Sequence[Playbook],
                       policy: IncidentPolicy, clock: Clock) -> list[IngestOutcome]:
    return ingest_deliveries(store=store, deliveries=deliveries, playbooks=playbooks, policy=policy, now=clock())


def _record_controller_events(events: Sequence[ControllerEvent], *, store: Store, git: GitRepos,
                              playbooks: Sequence[Playbook], settings: Settings,
                              clock: Clock) -> list[ControllerReport]:
    return record_controller_events(store=store, git=git, playbooks=playbooks, repos=[r.name for r in settings.repos],
                                    events=events, now=clock(), import_window=settings.git.import_window,
                                    wait=settings.git.fetch_wait.total_seconds())


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
