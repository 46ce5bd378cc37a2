"""What the HTTP entrypoints share: JSON errors, bounded bodies, follow-up work after an answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from bot.domain.durations import parse_duration
from bot.entrypoints.context import AppContext
from bot.entrypoints.refreshing import refresh_later
from bot.services.follow_ups import FollowUpWork, follow_up
from bot.services.ingest import IngestOutcome

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
# A route the app calls directly, past FastAPI's routing: those that take load.
Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(HTTPException):
    """A body over its route's limit (`http_gate` raises it from the read). An HTTPException, so
    FastAPI's own body parsing lets it through to the app's handler, which answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over {limit} bytes")


def error(status: int, code: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def span_of(since: str, *, most: timedelta, why: str = "") -> timedelta | JSONResponse:
    """A `since` query parameter as a duration, or the 422 that refuses it (not a duration, or
    past `most`)."""
    try:
        span = parse_duration(since)
    except ValueError as exc:
        return error(422, "invalid_request", f"since: {exc}")
    if span > most:
        return error(422, "invalid_request", f"since: at most {most.days}d{why}")
    return span


def parse_body(body: bytes, model: type[M]) -> M | JSONResponse:
    """The body as `model`, or the 400 (not JSON: bad UTF-8, too deep, a number past Python's
    4,300 digits) or 422 (not the model) that says why."""
    try:
        raw = json.loads(body)
    except RecursionError:
        return error(400, "malformed_json", "the body is nested too deeply")
    except (UnicodeDecodeError, ValueError) as exc:
        return error(400, "malformed_json", f"the body is not JSON: {exc}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        return error(422, "invalid_payload", validation_detail(exc))


async def read_body(request: Request) -> bytes:
    """The request body, at most its route's limit: BodyTooLarge past it, before it is all read."""
    return await request.body()


def validation_detail(exc: ValidationError | RequestValidationError) -> list[dict[str, str]]:
    """Where and why, for the sender; a key that is not valid Unicode is shown escaped."""
    return [
        {"loc": _printable(".".join(str(part) for part in err["loc"]))[:300],
         "msg": _printable(err["msg"].removeprefix("Value error, "))[:300]}  # pydantic's prefix says nothing
        for err in exc.errors()
    ][:20]


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def follow_up_work(ctx: AppContext) -> FollowUpWork:
    return FollowUpWork(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                        import_window=ctx.settings.git.import_window, forge=ctx.forge, applied=ctx.applied,
                        applied_window=ctx.settings.github.applied_window, page_url=ctx.page_url,
                        metrics=ctx.metrics_query, lease=ctx.settings.scheduler.follow_up_lease,
                        fetch_wait=ctx.settings.git.fetch_wait.total_seconds(), clock=ctx.clock,
                        later=lambda repos: refresh_later(ctx, repos), workers=ctx.settings.scheduler.sweep_workers)


def schedule_follow_up(ctx: AppContext, outcome: IngestOutcome) -> None:
    """Investigate opened incidents and announce resolved ones, after the webhook has answered.
    The work is already recorded with the delivery: if this process dies first, the sweep does it."""
    opened = [i.id for i in [*outcome.opened, *outcome.reopened] if i.id is not None]
    resolved = [i.id for i in outcome.resolved if i.id is not None]
    if not opened and not resolved:
        return

    def run() -> None:
        try:
            follow_up(follow_up_work(ctx), opened=opened, resolved=resolved, now=ctx.clock())
        except Exception as exc:  # logged; the recorded work stays pending for the sweep
            log.exception("follow_up.failed", incidents=opened + resolved, error=str(exc))

    ctx.work_executor.submit(run)
