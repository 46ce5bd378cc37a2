"""The API's writes on an incident: acknowledge, resolve, reopen, note, status update, role, severity,
hold an automatic merge, and the rollback in two steps
(GET the plan, POST it back with the full sha it showed). What the CLI uses with `--server`;
behind the same bearer token as the reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.domain.models import Actor, IncidentStatus, parse_incident_ref
from bot.domain.untrusted import StoredText
from bot.entrypoints.context import AppContext
from bot.services import act, automerge, incident_branch, roles
from bot.services import incidents as incident_service
from bot.services.notify import incident_update
from bot.services.plan import incident_plan
from bot.services.presenters import event_dict, plan_dict, rollback_dict, status_dict, steps_plan_dict

Refusal = Callable[[Request], JSONResponse | None]
Caller = Callable[[Request], str]  # the name of the API token the request carries
# The caller is the token's name; `by` is only whom it says it acts for ("on behalf of"), unverified.
Who = Field(default=None, max_length=100, pattern=r"^[\w.@:+-]+$",
            description="whom the token's holder acts for: the timeline says `<token name> on behalf of <by>`")


class StatusBody(BaseModel):
    """`{"by": "<who>"}`; a resolution may carry `note`."""

    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who
    note: StoredText = Field(default="", max_length=4000)


class HoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StoredText = Field(min_length=1, max_length=4000)
    by: StoredText | None = Who


class UpdateBody(NoteBody):
    """A status update: `{"text": ..., "by": ...}`."""


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,29}$", description="lead, or a role the playbook lists")
    user: StoredText = Field(min_length=1, max_length=200, pattern=r"^[\w.@:+-]+$", description="who takes it")
    by: StoredText | None = Who


class SeverityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: str = Field(max_length=20, description="info, warning, error or critical")
    by: StoredText | None = Who


class BranchBody(BaseModel):
    """`{"by": "<who>"}` cuts the incident branch; `{"ready": true}` marks its pull requests ready."""

    model_config = ConfigDict(extra="forbid")

    by: StoredText | None = Who
    ready: bool = Field(default=False, description="mark the drafts ready for review and ask the playbook's reviewers")


class RollbackBody(BaseModel):
    """The confirmation: the full sha the plan (`GET .../rollback`) showed, so nobody reverts a
    commit they did not see, and a ranking that changed in between reverts nothing unseen."""

    model_config = ConfigDict(extra="forbid")

    commit: StoredText = Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$", description="the plan's full sha")
    by: StoredText | None = Who
    force: bool = Field(default=False, description="roll back a change the plan says is `excluded` (reverted, "
                                                   "ruled out, below the evidence floor); the timeline says so")


def register_incident_actions(app: FastAPI, ctx: AppContext, *, refused: Refusal, caller: Caller) -> None:
    def change(ref: str, request: Request, body: StatusBody, target: IncidentStatus) -> JSONResponse:
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        result = incident_service.change_status(store=ctx.store, incident_id=number, target=target, actor=Actor.USER,
                                                actor_id=caller(request), on_behalf_of=body.by or "",
                                                now=ctx.clock(), note=body.note)
        if result.changed:
            incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=number, kind=target.value)
        return JSONResponse(status_dict(result))

    @app.post("/api/incidents/{ref}/ack")
    def acknowledge(ref: str, request: Request, body: StatusBody | None = None) -> JSONResponse:
        """Acknowledge: someone is on it. Asking again changes nothing (`changed: false`)."""
        return change(ref, request, body or StatusBody(), IncidentStatus.ACKNOWLEDGED)

    @app.post("/api/incidents/{ref}/resolve")
    def resolve(ref: str, request: Request, body: StatusBody | None = None) -> JSONResponse:
        """Resolve, with an optional note for the timeline."""
        return change(ref, request, body or StatusBody(), IncidentStatus.RESOLVED)

    @app.post("/api/incidents/{ref}/reopen")
    def reopen(ref: str, request: Request, body: StatusBody | None = None) -> JSONResponse:
        """Reopen a resolved incident, with an optional note; its earlier ranking stays on the timeline.
        409 naming the state when it is not resolved."""
        return change(ref, request, body or StatusBody(), IncidentStatus.OPEN)

    @app.post("/api/incidents/{ref}/hold")
    def hold(ref: str, request: Request, body: HoldBody | None = None) -> JSONResponse:
        """Hold the automatic merge announced for this incident (`actions.merge: confident`): Backout
        will not merge it. 409 when none is waiting (or it is already under way); again: `changed: false`."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        result = automerge.hold(store=ctx.store, notifier=ctx.notifier, incident_id=number, actor=Actor.USER,
                                actor_id=caller(request), on_behalf_of=(body or HoldBody()).by or "",
                                now=ctx.clock())
        return JSONResponse({"message": result.message, "changed": result.changed})

    @app.post("/api/incidents/{ref}/notes")
    def note(ref: str, request: Request, body: NoteBody) -> JSONResponse:
        """A note on the timeline."""
        if denied := refused(request):
            return denied
        added = incident_service.add_note(store=ctx.store, incident_id=parse_incident_ref(ref), text=body.text,
                                          actor=Actor.USER, actor_id=caller(request), on_behalf_of=body.by or "",
                                          now=ctx.clock())
        return JSONResponse(event_dict(added), status_code=201)

    @app.post("/api/incidents/{ref}/updates")
    def status_update(ref: str, request: Request, body: UpdateBody) -> JSONResponse:
        """A status update: on the timeline and in the incident's channel. 409 once resolved."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        said = roles.post_update(store=ctx.store, incident_id=number, text=body.text, actor_id=caller(request),
                                 on_behalf_of=body.by or "", now=ctx.clock())
        incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=number, kind="incident.update")
        return JSONResponse({"ref": f"INC-{number}", "message": said}, status_code=201)

    @app.post("/api/incidents/{ref}/roles")
    def role(ref: str, request: Request, body: RoleBody) -> JSONResponse:
        """Give a role (`lead`, or one of the playbook's `room.roles`) to someone."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        said = roles.assign_role(store=ctx.store, playbooks=ctx.playbooks, incident_id=number, role=body.role,
                                 user=body.user, actor_id=caller(request), on_behalf_of=body.by or "",
                                 now=ctx.clock())
        incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=number, kind="incident.role")
        return JSONResponse({"ref": f"INC-{number}", "message": said})

    @app.post("/api/incidents/{ref}/severity")
    def severity(ref: str, request: Request, body: SeverityBody) -> JSONResponse:
        """Raise or lower the severity; `changed: false` when it already was."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        incident, changed = roles.set_severity(store=ctx.store, incident_id=number, level=body.severity,
                                               actor_id=caller(request), on_behalf_of=body.by or "",
                                               now=ctx.clock())
        if changed:
            incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=number, kind="incident.severity")
        return JSONResponse({"ref": incident.ref, "severity": incident.severity.value, "changed": changed,
                             "message": f"{incident.ref} severity is {incident.severity.value}"})

    @app.get("/api/incidents/{ref}/plan", response_model=None)
    def rollback_steps(ref: str, request: Request) -> dict[str, Any] | JSONResponse:
        """The rollback plan when no change is confident: the plausible changes, the most recent first,
        each verified before the next (one step, the confident suspect, when there is one). Nothing is changed."""
        if denied := refused(request):
            return denied
        return steps_plan_dict(incident_plan(store=ctx.store, playbooks=ctx.playbooks,
                                             incident_id=parse_incident_ref(ref), now=ctx.clock()))

    @app.get("/api/incidents/{ref}/rollback", response_model=None)
    def rollback_plan(ref: str, request: Request, commit: StoredText | None = None) -> dict[str, Any] | JSONResponse:
        """What a rollback would revert (the best suspect, or `commit`): why, the files, the diff
        (shortened), the revert-safety warnings, the branch and, for a change the ranking
        excluded, why (`excluded`: confirming it needs `"force": true`). Nothing is changed."""
        if denied := refused(request):
            return denied
        return plan_dict(act.plan_rollback(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks,
                                           incident_id=parse_incident_ref(ref), sha=commit))

    @app.post("/api/incidents/{ref}/rollback")
    def rollback(ref: str, request: Request, body: RollbackBody) -> JSONResponse:
        """Revert the commit the plan showed on `backout/INC-n/revert-<sha7>` and, on a forge,
        open its pull request (never merged). `conflicted: true`: the revert did not apply and
        the incident branch was pushed instead. A change the ranking excluded: 409 saying why,
        unless `force` is true."""
        if denied := refused(request):
            return denied
        number = parse_incident_ref(ref)
        result = act.confirmed_rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                                        playbooks=ctx.playbooks, incident_id=number, sha=body.commit,
                                        actor=Actor.USER, actor_id=caller(request), on_behalf_of=body.by or "",
                                        now=ctx.clock(), page_url=ctx.page_url(number), force=body.force)
        return JSONResponse(rollback_dict(result))

    @app.post("/api/incidents/{ref}/branch")
    def branch(ref: str, request: Request, body: BranchBody | None = None) -> JSONResponse:
        """The incident branch `backout/INC-n/incident` in every repository of the playbook, each with
        its draft pull request (run again: adopted, never a second one); with `ready`, the drafts are
        marked ready for review and the playbook's reviewers asked."""
        if denied := refused(request):
            return denied
        chosen = body or BranchBody()
        return JSONResponse(incident_branch.branch_command(
            store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier, playbooks=ctx.playbooks,
            incident_id=parse_incident_ref(ref), ready=chosen.ready, actor_id=caller(request),
            on_behalf_of=chosen.by or "", now=ctx.clock(), page_url=ctx.page_url))
