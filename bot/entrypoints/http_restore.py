"""The API's last known good and restore: `GET /api/services/{service}/good`, and the restore in two
steps as the rollback is (GET the plan, POST it back with the good revision it showed). What the
CLI uses with `--server`; behind the same bearer token as the reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.domain.errors import Conflict
from bot.domain.models import Actor, parse_incident_ref
from bot.domain.untrusted import StoredText
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_actions import Who
from bot.services.good import last_known_good, service_playbook
from bot.services.presenters import good_dict, restore_plan_dict, rollback_dict
from bot.services.restore import RestorePlan, plan_restore, restore

Refusal = Callable[[Request], JSONResponse | None]
Caller = Callable[[Request], str]  # the name of the API token the request carries
Shared = Field(default=(), max_length=20, description="shared paths of the playbook to restore too")


class RestoreBody(BaseModel):
    """The confirmation: the full sha of the good revision the plan (`GET .../restore`) showed, so
    nobody restores to a revision they did not see."""

    model_config = ConfigDict(extra="forbid")

    good: str = Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$", description="the plan's good revision")
    include: tuple[StoredText, ...] = Shared
    repo: StoredText | None = Field(default=None, max_length=100)
    by: StoredText | None = Who


def register_restore(app: FastAPI, ctx: AppContext, *, refused: Refusal, caller: Caller) -> None:
    def planned(ref: str, include: tuple[str, ...], repo: str | None) -> RestorePlan:
        return plan_restore(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks, incident_id=parse_incident_ref(ref),
                            now=ctx.clock(), include=include, repo=repo)

    @app.get("/api/services/{service}/good", response_model=None)
    def good(service: str, request: Request, repo: str | None = None) -> dict[str, Any] | JSONResponse:
        """The service's last known good revision in each of its GitOps repositories, and why it counts
        (or why none does)."""
        if denied := refused(request):
            return denied
        playbook = service_playbook(ctx.playbooks, service)
        answers = last_known_good(store=ctx.store, playbook=playbook, now=ctx.clock(), repo=repo)
        return {"service": playbook.service, "repos": [good_dict(a) for a in answers]}

    @app.get("/api/incidents/{ref}/restore", response_model=None)
    def restore_plan(ref: str, request: Request, repo: str | None = None,
                     include: list[str] | None = None) -> dict[str, Any] | JSONResponse:
        """What a restore would do: the good revision and why, the paths (shared ones only when named
        in `include`), the commits it undoes with their revert-safety flags. Nothing is changed."""
        if denied := refused(request):
            return denied
        return restore_plan_dict(planned(ref, tuple(include or ()), repo))

    @app.post("/api/incidents/{ref}/restore")
    def restore_service(ref: str, request: Request, body: RestoreBody) -> JSONResponse:
        """Restore the service's paths to the good revision the plan showed on
        `backout/INC-n/restore-<sha7>` and, on a forge, open its pull request (never merged). 409
        when the last known good moved since the plan was shown."""
        if denied := refused(request):
            return denied
        plan = planned(ref, body.include, body.repo)
        if plan.good.sha != body.good:
            raise Conflict(f"the last known good is now {plan.good.short}, not {body.good[:7]}: look at the plan again")
        number = parse_incident_ref(ref)
        result = restore(store=ctx.store, git=ctx.git, notifier=ctx.notifier, plan=plan, actor=Actor.USER,
                         actor_id=caller(request), on_behalf_of=body.by or "", now=ctx.clock(), forge=ctx.forge,
                         reviewers=ctx.reviewers(plan.playbook), page_url=ctx.page_url(number))
        return JSONResponse(rollback_dict(result))
