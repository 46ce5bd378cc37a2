"""The API on out-of-band changes (drift): list them, and sync one from Git through Argo CD's API."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from bot.domain.untrusted import StoredText
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_actions import Caller, Refusal, Who
from bot.entrypoints.http_common import span_of
from bot.services.drift import drift_report, sync_drift

MOST = timedelta(days=366)


class SyncBody(BaseModel):
    """`{"by": "<who>"}`: the person the sync is for."""

    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who


def register_drift_routes(app: FastAPI, ctx: AppContext, *, refused: Refusal, caller: Caller) -> None:
    @app.get("/api/drift")
    def recent_drift(request: Request, since: str = "7d", service: StoredText | None = None) -> JSONResponse:
        """Out-of-band changes the controllers reported within `since` (default 7d, at most 366d),
        newest first; of one service with `service`."""
        if denied := refused(request):
            return denied
        within = span_of(since, most=MOST)
        if isinstance(within, JSONResponse):
            return within
        return JSONResponse(drift_report(store=ctx.store, now=ctx.clock(), within=within, service=service))

    @app.post("/api/drift/{ref}/sync")
    async def sync(ref: str, request: Request, body: SyncBody | None = None) -> JSONResponse:
        """Sync the drift's Argo CD Application from Git through Argo CD's API (`argocd.api_url`);
        409 with the command to run where Backout cannot (a Flux object, no API) or need not
        (already corrected)."""
        if denied := refused(request):
            return denied
        who = caller(request) + (f" for {body.by}" if body is not None and body.by else "")
        found = await run_in_threadpool(lambda: sync_drift(store=ctx.store, argo=ctx.argo, playbooks=ctx.playbooks,
                                                           handle=ref, actor_id=who, now=ctx.clock()))
        return JSONResponse(found)
