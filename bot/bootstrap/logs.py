"""Structured logs to stderr, JSON in production and text on a terminal, for Backout and the libraries
it runs."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

from bot.config import LoggingSettings


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
