"""The composition root: the only place that reads settings to build adapters and wire them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI
from sqlalchemy.engine import Engine, make_url

from bot.adapters.console import ConsoleNotifier
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.config import ConfigError, LoggingSettings, Problem, Settings, load_playbooks
from bot.domain.errors import StorageUnavailable
from bot.domain.playbooks import Playbook
from bot.domain.ports import Clock, GitRepos, Notifier, Store
from bot.entrypoints.context import AppContext, Readiness
from bot.entrypoints.http import create_http_app


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    ctx: AppContext
    http: FastAPI
    engine: Engine | None

    def close(self) -> None:
        self.ctx.ingest_executor.shutdown(wait=True)
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
    work_executor: Executor | None = None,
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
    ingest_workers = 1 if engine is None or engine.dialect.name == "sqlite" else 8
    ctx = AppContext(
        settings=settings,
        store=store,
        playbooks=playbooks,
        clock=clock or utc_now,
        readiness=readiness,
        git=git or build_git(settings),
        notifier=notifier or build_notifier(settings),
        ingest_executor=ThreadPoolExecutor(max_workers=ingest_workers, thread_name_prefix="ingest"),
        work_executor=work_executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="work"),
    )
    return App(ctx=ctx, http=create_http_app(ctx), engine=engine)


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


def build_notifier(settings: Settings) -> Notifier:
    if settings.chat.kind == "slack":
        raise ConfigError([Problem("config", "chat.kind", "slack is not available in this version; "
                                   "use console")])
    return ConsoleNotifier()


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
    """Structured logs to stderr: JSON in production, readable text on a terminal."""
    level = getattr(logging, settings.level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s", force=True)
    logging.getLogger("github").setLevel(max(level, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Looked up per logger, not once: whoever swaps sys.stderr later (a test runner) is obeyed.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
