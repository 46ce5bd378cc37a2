"""`backout serve`: the HTTP server, the scheduler and, in Socket Mode, Slack, in one process."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
import uvicorn

from bot import bootstrap
from bot.cli.errors import configuration_error, flat
from bot.config import (
    ConfigError,
    config_warnings,
    find_config_file,
    load_settings,
    playbook_warnings,
    serve_problems,
)
from bot.domain.errors import BackoutError
from bot.entrypoints.scheduler import start_scheduler

log = structlog.get_logger(__name__)


class GracefulServer(uvicorn.Server):
    """uvicorn, stopping on SIGTERM or SIGINT without re-raising the signal afterwards (uvicorn does,
    which would end the process before the scheduler's running jobs finish and the store closes)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


def settle_heap() -> None:
    """What start-up built lives as long as the process: frozen out of the cyclic collector's sight,
    so that a full collection (a huge delivery's allocations trigger a few) walks only what came
    after. Each one walked the whole heap too, 120 to 150 ms of CPU holding the interpreter lock,
    while every request waited; now 20 to 40 ms."""
    gc.collect()
    gc.freeze()
    # A thread that waits on SQLite or a socket gives up the interpreter lock, and to get it back
    # waits out the switch interval of a thread busy in Python (parsing a huge delivery): at the
    # default 5 ms, a write of a few small deliveries took 150 to 220 ms beside a 20,000-alert
    # parse (their p99 330 to 480 ms); at 0.5 ms, 64 to 88 ms (bench/ingest_mixed.py).
    sys.setswitchinterval(SWITCH_INTERVAL)


def run_server(config: Path | None, *, echo: Callable[[str], None]) -> int:
    """Serve until SIGTERM or SIGINT; the exit code (2: the config, 1: could not start)."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        echo(configuration_error(exc))
        return 2
    label = str(find_config_file(config) or "(defaults)")
    if problems := serve_problems(settings, file=label):
        echo("refusing to start: " + "; ".join(flat(str(p)) for p in problems))
        return 2
    bootstrap.configure_logging(settings.logging)
    try:
        built = bootstrap.build(settings)
    except ConfigError as exc:
        echo(configuration_error(exc))
        return 2
    except BackoutError as exc:
        echo(f"cannot start: {flat(str(exc))}")
        return 1
    for warning in [*config_warnings(settings, file=label), *playbook_warnings(settings, built.ctx.playbooks,
                                                                                file=label)]:
        log.warning("config.warning", key=warning.key, reason=warning.reason)
    bootstrap.start_replica(built)
    bootstrap.elect_leader(built)
    log.info("serve.starting", config=label, listen=f"{settings.server.host}:{settings.server.port}",
             storage=bootstrap.describe_storage(settings),
             leader="postgresql advisory lock" if built.engine is not None and built.engine.dialect.name ==
             "postgresql" else "this process (sqlite)",
             playbooks=[p.name for p in built.ctx.playbooks], playbooks_dir=str(settings.playbooks_dir),
             repos=[repo.name for repo in settings.repos], chat=settings.chat.kind,
             slack_mode=settings.slack.mode if settings.chat.kind == "slack" else None,
             replica=built.ctx.leader.replica)
    built.ctx.chart_workers.start()
    bootstrap.record_in_process(built)
    scheduler = start_scheduler(built.ctx)
    socket_mode = None
    if built.ctx.slack is not None and settings.slack.mode == "socket" and settings.slack.app_token:
        socket_mode = bootstrap.socket_mode(built.ctx.slack, settings.slack.app_token.get_secret_value())
        socket_mode.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
    server = GracefulServer(uvicorn.Config(built.http, host=settings.server.host, port=settings.server.port,
                                           log_level=settings.logging.level, access_log=False,
                                           log_config=None))
    settle_heap()
    try:
        server.run()
    finally:
        if socket_mode is not None:
            socket_mode.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
        log.info("serve.stopping", detail="waiting for running jobs")
        scheduler.shutdown(wait=True)
        built.close()
    return 0
