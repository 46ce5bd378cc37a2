"""The HTTP interface (FastAPI): the Alertmanager webhook, health, metrics and the incident API."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.adapters.alertmanager.payload import LARGE_BODY, AmPayload, parse_delivery, parse_large_delivery
from bot.domain.errors import (
    BackoutError,
    Conflict,
    InvalidInput,
    NotFound,
    TransientError,
    Unauthorized,
    UpstreamError,
)
from bot.domain.models import Actor, IncidentStatus, parse_incident_ref
from bot.domain.start_times import StartRange
from bot.domain.untrusted import StoredText
from bot.domain.verdicts import VerdictKind
from bot.entrypoints.charts import page_chart, page_html, read_view
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_actions import register_incident_actions
from bot.entrypoints.http_common import (
    BodyTooLarge,
    Handler,
    error,
    read_body,
    schedule_follow_up,
    span_of,
    validation_detail,
)
from bot.entrypoints.http_drift import register_drift_routes
from bot.entrypoints.http_forges import register_forge_webhooks
from bot.entrypoints.http_freeze import register_freeze
from bot.entrypoints.http_gate import BodyLimits, RequestGate
from bot.entrypoints.http_gitops import register_gitops_webhooks
from bot.entrypoints.http_pagerduty import register_pagerduty_webhook
from bot.entrypoints.http_pages import is_page, register_pages
from bot.entrypoints.http_restore import register_restore
from bot.entrypoints.http_slack import register_slack_events
from bot.entrypoints.metrics import Metrics
from bot.entrypoints.webhook_auth import ApiAuth, WebhookAuth
from bot.services import incidents as incident_service
from bot.services import report as report_service
from bot.services import verdicts as verdict_service
from bot.services.authors import notify_authors
from bot.services.export import ExportFormat, build_export
from bot.services.ingest import IngestOutcome
from bot.services.ingest_parts import PART, combined, parts
from bot.services.presenters import event_dict, incident_dict, incident_view_dict, ranking_dict

log = structlog.get_logger(__name__)
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

# The routes that take server.max_body_bytes; every other body is capped far below (http_gate).
WEBHOOK_PATHS = ["/webhooks/alertmanager", "/webhooks/flux", "/webhooks/argocd", "/slack/events"]
REPORT_SPAN_LIMIT = timedelta(days=36_500)  # `now - since` stays a date
ERROR_STATUS: list[tuple[type[BackoutError], int, str]] = [
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 400, "bad_request"),
    (Unauthorized, 401, "unauthorized"),
    (TransientError, 503, "unavailable"),
    (UpstreamError, 502, "upstream_error"),
]


class LatencyMiddleware:
    """Request latency by route template (plain ASGI: BaseHTTPMiddleware costs a task per
    request), and the routes that take load (the webhooks of Alertmanager, Flux and Argo CD, the
    liveness probe) called directly: FastAPI's routing, dependency solving and exception
    middleware cost as much as the handler.
    Those handlers stay declared on the app for the OpenAPI document; an unexpected error in
    one is answered as the app's catch-all answers it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, direct: dict[tuple[str, str], Handler],
                 on_error: ErrorHandler) -> None:
        self.app, self.metrics, self.direct, self.on_error = app, metrics, direct, on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        handler = self.direct.get((scope["method"], scope["path"]))
        try:
            if handler is None:
                await self.app(scope, receive, send)
            else:
                await self._call(handler, scope, receive, send)
        finally:
            route = scope["path"] if handler else getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_latency.labels(route, scope["method"]).observe(time.perf_counter() - started)

    async def _call(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:  # answered as the app's catch-all answers it
            response = await self.on_error(request, exc)
        await response(scope, receive, send)


def payload_schema() -> dict[str, Any]:
    """Alertmanager's webhook body as JSON Schema, inlined for the OpenAPI document (the handler
    reads the raw body itself, so FastAPI does not describe it)."""
    schema = AmPayload.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return dict(inline(schema))


def create_http_app(ctx: AppContext) -> FastAPI:
    """The FastAPI app over an already-built context."""
    app = FastAPI(title="Backout", version="0.1.0", docs_url=None, redoc_url=None)
    auth = WebhookAuth(ctx.settings.alertmanager)
    api_auth = ApiAuth(ctx.settings.api)
    writer = ctx.ingest_queue
    starts = StartRange(max_age=ctx.settings.alertmanager.max_start_age,
                        max_ahead=ctx.settings.alertmanager.max_start_ahead)
    metrics = ctx.metrics

    direct: dict[tuple[str, str], Handler] = {}  # filled as the handlers are defined

    @app.exception_handler(BackoutError)
    async def on_backout_error(_request: Request, exc: BackoutError) -> JSONResponse:
        for kind, status, code in ERROR_STATUS:
            if isinstance(exc, kind):
                return error(status, code, str(exc))
        return error(500, "internal", "internal error")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, exc.detail)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("http.unhandled", error=type(exc).__name__, path=request.url.path)
        if request.url.path == "/webhooks/alertmanager":
            metrics.webhook_requests.labels("error").inc()
        return error(500, "internal", "internal error; see the server log")

    @app.post("/webhooks/alertmanager", openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": payload_schema()}}}})
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        if not auth.allows(request.headers.get("authorization")):
            metrics.webhook_requests.labels("unauthorized").inc()
            return error(401, "unauthorized", "missing or wrong credentials",
                         {"WWW-Authenticate": auth.challenge})
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            metrics.webhook_requests.labels("too_large").inc()
            return error(413, "too_large", exc.detail)
        try:  # parsed and validated in one pass, from the bytes; a huge body alert by alert, off the loop
            delivery = (await run_in_threadpool(parse_large_delivery, body, now=ctx.clock(), window=starts)
                        if len(body) > LARGE_BODY else parse_delivery(body, now=ctx.clock(), window=starts))
        except ValidationError as exc:
            if not_json := [e for e in exc.errors() if e["type"] == "json_invalid"]:
                # Not JSON, nested too deeply, an integer of thousands of digits, a lone surrogate.
                metrics.webhook_requests.labels("malformed").inc()
                return error(400, "malformed_json", f"the body is not JSON: {not_json[0]['msg']}")
            metrics.webhook_requests.labels("invalid").inc()
            return error(422, "invalid_payload", validation_detail(exc))
        if delivery.set_aside:
            metrics.ingested["set_aside"].inc(len(delivery.set_aside))
        if delivery.set_aside and not delivery.alerts:  # nothing to store: Alertmanager drops a 4xx
            metrics.webhook_requests.labels("invalid").inc()
            return error(422, "invalid_payload", [
                {"loc": f"alerts.{a.index}.startsAt", "msg": a.reason} for a in delivery.set_aside[:20]])
        try:
            # In parts, each awaited in turn: small deliveries are written between them.
            cut = await run_in_threadpool(parts, delivery) if len(delivery.alerts) > PART else [delivery]
            outcome = combined([await writer.submit(part) for part in cut])
        except TransientError as exc:
            # 503 makes Alertmanager retry this delivery; nothing was written.
            metrics.webhook_requests.labels("unavailable").inc()
            log.warning("webhook.storage_unavailable", error=str(exc))
            return error(503, "unavailable", "storage is unavailable; retry later")
        metrics.webhook_accepted.inc()
        _count(metrics, outcome)
        schedule_follow_up(ctx, outcome)
        log.info("webhook.ingested", group_key=delivery.group_key, alerts=len(delivery.alerts),
                 new=outcome.new_alerts, resolved=outcome.resolved_alerts,
                 duplicates=outcome.duplicates,
                 opened=[incident.ref for incident in outcome.opened])
        return JSONResponse({
            "status": "accepted",
            "alerts": len(delivery.alerts),
            "new": outcome.new_alerts,
            "resolved": outcome.resolved_alerts,
            "duplicates": outcome.duplicates,
            "incidents": sorted(f"INC-{number}" for number in outcome.touched),
            "set_aside": [{"index": a.index, "fingerprint": a.fingerprint, "alertname": a.name, "reason": a.reason}
                          for a in delivery.set_aside],
        })

    direct[("POST", "/webhooks/alertmanager")] = alertmanager_webhook

    if ctx.slack is not None and ctx.slack.signing_secret:  # HTTP mode; Socket Mode may have no secret
        register_slack_events(app, ctx.slack)
    direct.update(register_gitops_webhooks(app, ctx))
    register_pagerduty_webhook(app, ctx)
    register_forge_webhooks(app, ctx)

    def refused(request: Request, *, page_of: int | None = None) -> JSONResponse | None:
        """None when the request may read; otherwise a 401 that says what is missing and
        nothing about any incident. An incident page also opens with its link's signed token."""
        why = api_auth.refusal(request.headers.get("authorization"))
        if why is None:
            return None
        if page_of is not None and ctx.links.allows(page_of, request.query_params.get("t"), now=ctx.clock()):
            return None
        if page_of is not None and request.query_params.get("t"):
            why = "the link's token is not valid or has expired: ask for a new link, or send an API token"
        return error(401, "unauthorized", why, {"WWW-Authenticate": 'Bearer realm="backout"'})

    def caller(request: Request) -> str:
        """Who writes: the name of the API token the request carries (after `refused` let it in)."""
        return api_auth.caller(request.headers.get("authorization"))

    register_incident_actions(app, ctx, refused=refused, caller=caller)
    register_restore(app, ctx, refused=refused, caller=caller)
    register_freeze(app, ctx, refused=refused, caller=caller)
    register_drift_routes(app, ctx, refused=refused, caller=caller)
    page_refusal = register_pages(app, ctx, refused=refused)

    @app.get("/healthz")
    async def healthz(_request: Request) -> JSONResponse:
        """Liveness, answered on the event loop: no database, no lock, no worker thread (a sync
        route would queue behind every busy one, and the probe would restart a healthy pod)."""
        return JSONResponse({"status": "ok"})

    direct[("GET", "/healthz")] = healthz

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        state = ctx.readiness()
        leads = ctx.leader.is_leader()
        # A Git host not answering leaves Backout ready: it ranks from its mirrors meanwhile.
        down = ctx.git.outages()
        replica = {"replica": ctx.leader.replica, "leader": leads, "git": down}
        if state.ready:
            detail = "; ".join([state.detail, *dict.fromkeys(down.values())])
            return JSONResponse({"status": "ready", "detail": detail, **replica})
        return JSONResponse({"error": "not_ready", "detail": state.detail, **replica}, status_code=503)

    @app.get("/metrics")
    def metrics_endpoint(request: Request) -> Response:
        if not ctx.settings.api.metrics_public and (denied := refused(request)):
            return denied
        metrics.write_queue.labels("ingest").set(ctx.ingest_queue.waiting)
        metrics.write_queue.labels("controller_events").set(ctx.controller_queue.waiting)
        metrics.leader.clear()
        metrics.leader.labels(ctx.leader.replica).set(1 if ctx.leader.is_leader() else 0)
        try:
            chat, follow_ups, held, active = ctx.store.run(
                lambda tx: (tx.chat.backlog(), tx.follow_ups.backlog(), tx.held_events.count(),
                            tx.incidents.count_active()))
            metrics.backlog.labels("chat").set(chat)
            metrics.backlog.labels("follow_ups").set(follow_ups)
            metrics.backlog.labels("held_controller_events").set(held)
            if ctx.reviews is not None:
                metrics.backlog.labels("review_checks").set(ctx.reviews.queue.backlog())
            for status, count in active.items():
                metrics.incidents_active.labels(status.value).set(count)
        except TransientError:
            pass  # the database is down: /readyz says so; the last figures stay
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/incidents", response_model=None)
    def list_incidents(
        request: Request, status: IncidentStatus | None = None, limit: int = Query(default=100, ge=1, le=1000)
    ) -> dict[str, Any] | JSONResponse:
        if denied := refused(request):
            return denied
        found = incident_service.list_incidents(store=ctx.store, status=status, limit=limit)
        return {"incidents": [incident_dict(incident) for incident in found]}

    @app.get("/api/incidents/{ref}", response_model=None)
    def show_incident(ref: str, request: Request) -> dict[str, Any] | JSONResponse:
        """The incident, and `page_url`: its page with a fresh signed token, to open in a browser."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        view = incident_service.get_incident(store=ctx.store, incident_id=number)
        return incident_view_dict(view) | {"page_url": ctx.signed_page_url(number)}

    @app.get("/api/incidents/{ref}/suspects", response_model=None)
    def show_suspects(ref: str, request: Request) -> dict[str, Any] | JSONResponse:
        if denied := refused(request):
            return denied
        ranking = incident_service.get_ranking(store=ctx.store, incident_id=parse_incident_ref(ref))
        return ranking_dict(ranking)

    @app.get("/api/incidents/{ref}/export")
    async def export(ref: str, request: Request, format: ExportFormat = ExportFormat.JSON) -> Response:
        if denied := refused(request):
            return denied
        view, version = await read_view(ctx, parse_incident_ref(ref))
        if format is ExportFormat.PNG:
            return Response(await page_chart(ctx, view, version), media_type="image/png")
        if format is ExportFormat.HTML:
            return HTMLResponse(await page_html(ctx, view, version))
        document = await run_in_threadpool(build_export, view, generated_at=ctx.clock(), links=ctx.export_links())
        if format is ExportFormat.MARKDOWN:
            return Response(await run_in_threadpool(ctx.export.markdown, document),
                            media_type="text/markdown; charset=utf-8")
        return JSONResponse(document)

    @app.get("/api/incidents/{ref}/chart.png")
    async def chart(ref: str, request: Request) -> Response:
        """The key metric over the incident with the changes, alerts and actions marked."""
        if denied := refused(request):
            return denied
        view, version = await read_view(ctx, parse_incident_ref(ref))
        return Response(await page_chart(ctx, view, version), media_type="image/png")

    @app.post("/api/incidents/{ref}/verdict")
    def post_verdict(ref: str, body: VerdictBody, request: Request) -> JSONResponse:
        """A responder's verdict: the change that caused it, not this change, or no change."""
        if denied := refused(request):
            return denied
        found = verdict_service.record_verdict(
            store=ctx.store, playbooks=ctx.playbooks, incident_id=parse_incident_ref(ref), kind=body.verdict,
            sha=body.sha, actor=Actor.USER, actor_id=caller(request), on_behalf_of=body.by or "", now=ctx.clock(),
            notifier=ctx.notifier, metrics=ctx.metrics_query)
        ctx.work_executor.submit(lambda: notify_authors(
            store=ctx.store, forge=ctx.forge, playbooks=ctx.playbooks, incident_id=found.incident_id,
            now=ctx.clock(), page_url=ctx.page_url(found.incident_id)))
        return JSONResponse(found.model_dump(mode="json"), status_code=201)

    def report_window(request: Request, since: str) -> tuple[datetime, datetime] | JSONResponse:
        """(since, now) for a report, or the refusal: no token, or `since` not a duration."""
        if denied := refused(request):
            return denied
        span = span_of(since, most=REPORT_SPAN_LIMIT, why=" (a century)")
        if isinstance(span, JSONResponse):
            return span
        now = ctx.clock()
        return now - span, now

    @app.get("/api/report")
    def team_report(request: Request, since: str = "30d", service: StoredText | None = None) -> JSONResponse:
        """Incidents, time to acknowledge/mitigate/resolve (median, p90), incidents a change caused,
        reverts opened and merged, ranking accuracy: over `since`, optionally one service."""
        window = report_window(request, since)
        if isinstance(window, JSONResponse):
            return window
        return JSONResponse(report_service.team_report(store=ctx.store, since=window[0], now=window[1],
                                                       service=service))

    @app.get("/api/report/accuracy")
    def report_accuracy(request: Request, since: str = "30d") -> JSONResponse:
        """Precision@1 and recall@3 from responders' verdicts, by service and playbook."""
        window = report_window(request, since)
        if isinstance(window, JSONResponse):
            return window
        return JSONResponse(verdict_service.accuracy_report(store=ctx.store, since=window[0], now=window[1]))

    @app.get("/api/incidents/{ref}/timeline", response_model=None)
    def show_timeline(ref: str, request: Request) -> dict[str, Any] | JSONResponse:
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        events = incident_service.get_timeline(store=ctx.store, incident_id=number)
        return {"ref": f"INC-{number}", "timeline": [event_dict(event) for event in events]}

    app.add_middleware(LatencyMiddleware, metrics=metrics, direct=direct, on_error=on_unexpected)
    # Added last, so it comes first: around the direct handlers too.
    app.add_middleware(RequestGate, api_auth=api_auth, limits=BodyLimits.for_webhooks(
        ctx.settings.server.max_body_bytes, WEBHOOK_PATHS), pages=(is_page, page_refusal))
    return app


class VerdictBody(BaseModel):
    """`{"verdict": "culprit" | "not_culprit" | "no_change", "sha": "<prefix>", "by": "<who>"}`"""

    model_config = ConfigDict(extra="forbid")

    verdict: VerdictKind
    sha: StoredText | None = Field(default=None, max_length=64)
    by: StoredText | None = Field(default=None, max_length=100, pattern=r"^[\w.@:+-]+$",
                                  description="whom the token's holder acts for (shown as `on behalf of`)")



def _count(metrics: Metrics, outcome: IngestOutcome) -> None:
    for counter, amount in ((metrics.ingested["new"], outcome.new_alerts),
                            (metrics.ingested["resolved"], outcome.resolved_alerts),
                            (metrics.ingested["duplicate"], outcome.duplicates),
                            (metrics.opened["new"], len(outcome.opened)),
                            (metrics.opened["reopened"], len(outcome.reopened))):
        if amount:
            counter.inc(amount)
