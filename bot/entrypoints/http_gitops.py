"""The GitOps controllers' webhooks: Flux events, Argo CD notifications, and CI build notices."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bot.adapters.controllers import ArgoNotification, BuildNotice, FluxEvent
from bot.domain.errors import TransientError
from bot.domain.gitops import ControllerEvent, Outcome
from bot.entrypoints.context import AppContext
from bot.entrypoints.held_events import held_work, settle_later
from bot.entrypoints.http_common import (
    BodyTooLarge,
    Handler,
    error,
    parse_body,
    read_body,
    schedule_follow_up,
)
from bot.entrypoints.webhook_auth import ApiAuth, ControllerAuth
from bot.services import lifecycle
from bot.services.drift import with_fields
from bot.services.gitops import ControllerReport, describe, record_controller_event
from bot.services.held_events import hold
from bot.services.investigate import rerank_open_incidents

log = structlog.get_logger(__name__)


def register_gitops_webhooks(app: FastAPI, ctx: AppContext) -> dict[tuple[str, str], Handler]:
    """The routes; returns the controllers' webhooks, for the app to call directly (a storm of
    Flux events spends more in FastAPI's routing than in the handler)."""
    flux = ctx.settings.flux
    flux_auth = ControllerAuth(
        hmac_keys=flux.secret_forms("hmac_key"),
        token=flux.token.get_secret_value() if flux.token else None, name="Flux")
    argo = ctx.settings.argocd
    argo_auth = ControllerAuth(token=argo.token.get_secret_value() if argo.token else None, name="Argo CD")
    api_auth = ApiAuth(ctx.settings.api)
    repos = [repo.name for repo in ctx.settings.repos]
    follow_ups = Coalescing(ctx.work_executor)

    async def parsed(request: Request, auth: ControllerAuth | None, model: type[BaseModel]) -> Any:
        """The body as `model`, or the JSONResponse that refuses it (counted by status)."""
        found = await _parsed(request, auth, model)
        if isinstance(found, JSONResponse):
            name = "build" if auth is None else ("flux" if auth is flux_auth else "argocd")
            outcome = {401: "unauthorized", 413: "too_large", 400: "malformed"}.get(found.status_code, "invalid")
            ctx.metrics.controller_events.labels(name, outcome).inc()
        return found

    async def _parsed(request: Request, auth: ControllerAuth | None, model: type[BaseModel]) -> Any:
        credentials = {"signature": request.headers.get("x-signature"),
                       "authorization": request.headers.get("authorization")}
        if auth is not None and (why := auth.early_refusal(**credentials)):
            return error(401, "unauthorized", why, {"WWW-Authenticate": 'Bearer realm="backout"'})
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            return error(413, "too_large", exc.detail)
        if auth is not None and (why := auth.refusal(body, **credentials)):
            return error(401, "unauthorized", why, {"WWW-Authenticate": 'Bearer realm="backout"'})
        return parse_body(body, model)

    def record(controller_event: ControllerEvent, wait: float | None) -> ControllerReport:
        return record_controller_event(
            store=ctx.store, git=ctx.git, playbooks=ctx.playbooks, repos=repos, event=controller_event,
            now=ctx.clock(), import_window=ctx.settings.git.import_window, wait=wait)

    async def handle(controller_event: ControllerEvent) -> JSONResponse:
        """Answered within `git.fetch_wait`, once recorded with the events waiting beside it: a
        revision whose fetch takes longer is recorded when it lands."""
        if ctx.argo is not None and controller_event.outcome is Outcome.DRIFTED:
            # Argo CD's API names the drifted fields: asked here, never in the batch writer's thread.
            argo = ctx.argo
            controller_event = await run_in_threadpool(lambda: with_fields(controller_event, argo))
        try:
            report = await ctx.controller_queue.submit(controller_event)
            if report.fetching is not None:  # stored before the 202: Flux sends it once, and this process may die
                await run_in_threadpool(hold, ctx.store, controller_event, now=ctx.clock(), note=report.fetching)
            if report.fetching is None:  # its alert filed before the answer: a 503 has the controller send it again
                return await answer(controller_event, report)
        except TransientError as exc:
            ctx.metrics.controller_events.labels(controller_event.controller.value, "unavailable").inc()
            log.warning("controller_event.storage_unavailable", error=str(exc))
            return error(503, "unavailable", "storage is unavailable; retry later")
        if report.fetching is not None:
            settle_later(ctx, held, [controller_event])
            log.info("controller_event.waiting_for_fetch", object=controller_event.object_id,
                     revision=controller_event.revision[:60], detail=report.fetching)
            return JSONResponse({"status": "fetching", "object": controller_event.object_id,
                                 "outcome": controller_event.outcome.value, "sha": None, "repo": None, "applied": 0,
                                 "detail": f"{report.fetching}; recorded when the fetch lands", "incidents": []},
                                status_code=202)

    def recorded_later(controller_event: ControllerEvent, report: ControllerReport) -> None:
        """In a git-wait or scheduler thread: a held event, recorded; what follows, as the webhook would have."""
        asyncio.run(answer(controller_event, report))  # a loop of this thread's own; an error keeps it held

    # Held events (answered 202 while their revision is fetched) are recorded the same way, here and by the sweep.
    held = ctx.held = held_work(ctx, record=lambda ev: record(ev, None), recorded=recorded_later)

    async def answer(controller_event: ControllerEvent, report: ControllerReport) -> JSONResponse:
        ctx.metrics.controller_events.labels(
            controller_event.controller.value,
            "duplicate" if report.duplicate else controller_event.outcome.value).inc()
        incidents = await _deliver(report)
        for repo in report.rerank:
            follow_ups.submit(f"rerank:{repo}", partial(_rerank, repo))
        if report.applied:  # perhaps a revert: its incident is mitigated
            follow_ups.submit("advance", _advance)
        log.info("controller_event.recorded", object=controller_event.object_id, outcome=controller_event.outcome,
                 reason=controller_event.reason, revision=controller_event.revision[:60], result=describe(report))
        return JSONResponse({"status": "duplicate" if report.duplicate else "accepted",
                             "object": controller_event.object_id, "outcome": controller_event.outcome.value,
                             "sha": report.sha, "repo": report.repo, "applied": report.applied,
                             "detail": describe(report), "incidents": incidents,
                             "drift": report.drift.handle if report.drift is not None else None},
                            status_code=200 if report.duplicate else 202)

    async def _deliver(report: ControllerReport) -> list[str]:
        touched: set[int] = set()
        for delivery in report.deliveries:
            outcome = await ctx.ingest_queue.submit(delivery)
            touched |= outcome.touched
            schedule_follow_up(ctx, outcome)
        return sorted(f"INC-{number}" for number in touched)

    def _rerank(repo: str) -> None:
        try:
            rerank_open_incidents(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, repos=[repo],
                                  now=ctx.clock(), git=ctx.git, metrics=ctx.metrics_query, forge=ctx.forge,
                                  page_url=ctx.page_url)
        except Exception as exc:  # logged; the next refresh ranks again
            log.exception("controller_event.rerank_failed", repo=repo, error=str(exc))

    def _advance() -> None:
        try:
            lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock())
        except Exception as exc:  # logged; the scheduler's lifecycle job tries again
            log.exception("controller_event.lifecycle_failed", error=str(exc))

    @app.post("/webhooks/flux")
    async def flux_webhook(request: Request) -> JSONResponse:
        """A Flux notification-controller event (Provider type generic-hmac, or generic with a token)."""
        found = await parsed(request, flux_auth, FluxEvent)
        return found if isinstance(found, JSONResponse) else await handle(found.to_event())

    @app.post("/webhooks/argocd")
    async def argocd_webhook(request: Request) -> JSONResponse:
        """An Argo CD notification rendered by Backout's template (deploy/argocd/notifications.yaml)."""
        found = await parsed(request, argo_auth, ArgoNotification)
        return found if isinstance(found, JSONResponse) else await handle(found.to_event(now=ctx.clock()))

    @app.post("/webhooks/build")
    async def build_webhook(request: Request) -> JSONResponse:
        """A CI job says which application commit an image tag was built from (an API token)."""
        if why := api_auth.refusal(request.headers.get("authorization")):
            return error(401, "unauthorized", why, {"WWW-Authenticate": 'Bearer realm="backout"'})
        found = await parsed(request, None, BuildNotice)
        if isinstance(found, JSONResponse):
            return found
        if found.repo not in repos:
            return error(422, "invalid_payload", [{"loc": "repo", "msg": f"no repository named {found.repo!r} "
                                                   f"in the config (known: {', '.join(repos) or 'none'})"}])
        build = found.to_build()
        try:
            await run_in_threadpool(lambda: ctx.store.run(lambda tx: tx.gitops.add_build(build, now=ctx.clock())))
        except TransientError:
            return error(503, "unavailable", "storage is unavailable; retry later")
        return JSONResponse({"status": "accepted", "image": build.image, "tag": build.tag, "sha": build.sha},
                            status_code=202)


    return {("POST", "/webhooks/flux"): flux_webhook, ("POST", "/webhooks/argocd"): argocd_webhook}

class Coalescing:
    """Runs follow-up work on the executor once per key however often it is asked for while it
    waits to start: a storm of events asks for the same re-ranking a thousand times a second."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._waiting: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            if key in self._waiting:
                return
            self._waiting.add(key)

        def run() -> None:
            with self._lock:  # from here a new request runs again: it may need what changed meanwhile
                self._waiting.discard(key)
            work()

        self._executor.submit(run)
