"""The API's freeze and unfreeze of a service's automation in Git (`backout freeze`, `backout
unfreeze` with `--server`), and the list of freezes; behind the same bearer token as the reads."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.domain.models import Actor
from bot.domain.untrusted import StoredText
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_actions import Caller, Refusal, Who
from bot.services.freeze import freeze, incident_for, unfreeze
from bot.services.freeze_follow import list_freezes
from bot.services.presenters import freeze_dict, freeze_rows_dict


class FreezeBody(BaseModel):
    """`{"by": "<who>"}`; `reconcile_disabled` adds Flux's `reconcile: disabled` (it blocks every later
    change to the object, a revert's included)."""

    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who
    reconcile_disabled: bool = Field(default=False, description="also disable Flux's reconciliation of the "
                                                                "service's Kustomizations and HelmReleases")


class UnfreezeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who


def register_freeze(app: FastAPI, ctx: AppContext, *, refused: Refusal, caller: Caller) -> None:
    @app.post("/api/incidents/{ref}/freeze")
    def freeze_route(ref: str, request: Request, body: FreezeBody | None = None) -> JSONResponse:
        """Pause the service's automation in Git: a `backout/INC-n/freeze` pull request per GitOps
        repository (`ref` may name the service: its newest active incident). Asking again adopts it."""
        if denied := refused(request):
            return denied
        asked = body or FreezeBody()
        number = incident_for(ctx.store, ref)
        result = freeze(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge, playbooks=ctx.playbooks,
                        incident_id=number, actor=Actor.USER, actor_id=caller(request), now=ctx.clock(),
                        reconcile_disabled=asked.reconcile_disabled, page_url=ctx.page_url(number),
                        on_behalf_of=asked.by or "")
        return JSONResponse(freeze_dict(result))

    @app.post("/api/incidents/{ref}/unfreeze")
    def unfreeze_route(ref: str, request: Request, body: UnfreezeBody | None = None) -> JSONResponse:
        """Take out exactly what the incident's freezes added: a `backout/INC-n/unfreeze` pull request each."""
        if denied := refused(request):
            return denied
        number = incident_for(ctx.store, ref)
        by = (body or UnfreezeBody()).by or ""
        result = unfreeze(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                          playbooks=ctx.playbooks, incident_id=number, actor=Actor.USER, actor_id=caller(request),
                          now=ctx.clock(), page_url=ctx.page_url(number), on_behalf_of=by)
        return JSONResponse(freeze_dict(result))

    @app.get("/api/freezes", response_model=None)
    def freezes(request: Request) -> dict[str, Any] | JSONResponse:
        """Every freeze pushed, open or merged, with its expiry and whether it is past it."""
        if denied := refused(request):
            return denied
        return freeze_rows_dict(list_freezes(store=ctx.store, now=ctx.clock()))
