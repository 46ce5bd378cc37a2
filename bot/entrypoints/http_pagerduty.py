"""PagerDuty's webhook (v3): `POST /webhooks/pagerduty`, signed with the subscription's secret. Incident
events open or follow a Backout incident (investigated and ranked like an alert's) or reach its
timeline; other event types (`pagey.ping` when the subscription is tested) are answered and ignored."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bot.adapters.pagerduty import WebhookBody, WebhookSignature
from bot.domain.errors import TransientError
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_common import (
    BodyTooLarge,
    error,
    parse_body,
    read_body,
    schedule_follow_up,
    validation_detail,
)
from bot.services.paging_inbound import record_pager_event

log = structlog.get_logger(__name__)


def register_pagerduty_webhook(app: FastAPI, ctx: AppContext) -> None:
    secret = ctx.settings.pagerduty.webhook_secret
    signature = WebhookSignature(secret.get_secret_value() if secret else None)

    @app.post("/webhooks/pagerduty")
    async def pagerduty_webhook(request: Request) -> JSONResponse:
        """A PagerDuty webhook (v3) event; refused (401) before its body is parsed unless signed."""
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            return error(413, "too_large", exc.detail)
        if why := signature.refusal(body, request.headers.get("x-pagerduty-signature")):
            log.warning("pagerduty.webhook_refused", reason=why)
            return error(401, "unauthorized", why)
        parsed = parse_body(body, WebhookBody)
        if isinstance(parsed, JSONResponse):
            return parsed
        try:
            found = parsed.to_event() if parsed.kind == "incident" else None
        except ValidationError as exc:
            return error(422, "invalid_payload", validation_detail(exc))
        if found is None:
            return JSONResponse({"status": "ignored", "event_type": parsed.event.event_type[:100]})
        try:
            report = await run_in_threadpool(lambda: record_pager_event(
                store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, event_=found))
            incidents = {report.incident_id} if report.incident_id is not None else set()
            duplicate = report.duplicate
            if report.delivery is not None:
                outcome = await ctx.ingest_queue.submit(report.delivery)
                schedule_follow_up(ctx, outcome)  # opened: investigated and ranked
                incidents |= outcome.touched
                duplicate = not (outcome.new_alerts or outcome.resolved_alerts)  # the alert's identity says
        except TransientError as exc:  # 5xx: PagerDuty delivers it again
            log.warning("pagerduty.webhook_unavailable", error=str(exc))
            return error(503, "unavailable", "storage is unavailable; retry later")
        log.info("pagerduty.webhook", event_type=found.kind.value, pagerduty_incident=found.incident_id,
                 detail=report.detail)
        return JSONResponse({"status": "duplicate" if duplicate else "accepted", "detail": report.detail,
                             "incidents": sorted(f"INC-{number}" for number in incidents)},
                            status_code=200 if duplicate else 202)
