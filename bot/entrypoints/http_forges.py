"""The forges' webhooks: `POST /webhooks/github` (X-Hub-Signature-256) and `POST /webhooks/gitlab`
(X-Gitlab-Token), one secret per forge. A small intake: each delivery is verified before its body
is parsed (401 otherwise), parsed once into the domain's forge events, then dispatched by kind to
the services that follow it: pushes to incident branches onto the timeline, Backout's pull
requests merged or closed, and review risk on the open requests of repositories with review.risk
(queued in the delivery's answer, assessed after it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from bot.adapters.forge_hooks import GitHubSignature, GitLabToken, github_delivery, github_json, gitlab_delivery
from bot.domain.errors import InvalidInput, TransientError
from bot.domain.forge_events import Delivery
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_common import BodyTooLarge, error, read_body
from bot.services.branch_pushes import record_push, record_request
from bot.services.reviews import ReviewWork, queue_request, run_one

log = structlog.get_logger(__name__)
Follower = Callable[[str, Delivery], object]  # (Backout's repository name, the delivery) -> what it did


@dataclass
class ForgeIntake:
    """Verified deliveries in, by the forge's project name; each kind to its followers."""

    repos: Mapping[tuple[str, str], str]  # (forge, project) -> Backout's repository name
    followers: dict[str, list[Follower]] = field(default_factory=dict)

    def follow(self, kind: str, follower: Follower) -> None:
        self.followers.setdefault(kind, []).append(follower)

    def dispatch(self, forge: str, delivery: Delivery) -> dict[str, object]:
        found = delivery.push or delivery.request
        if found is None:
            return {"status": "ignored", "detail": delivery.detail}
        repo = self.repos.get((forge, found.project))
        if repo is None:
            return {"status": "ignored", "detail": f"{found.project} is not a repository Backout watches"}
        done = [follower(repo, delivery) for follower in self.followers.get(delivery.kind, [])]
        return {"status": "accepted", "repo": repo, "done": [d for d in done if d]}


def forge_repos(ctx: AppContext) -> dict[tuple[str, str], str]:
    """Which configured repository a forge's project name is."""
    found: dict[tuple[str, str], str] = {}
    for repo in ctx.settings.repos:
        if repo.forge == "github" and repo.github_repo:
            found[("github", repo.github_repo)] = repo.name
        if repo.forge == "gitlab" and repo.gitlab_project:
            found[("gitlab", repo.gitlab_project)] = repo.name
    return found


def branch_intake(ctx: AppContext) -> ForgeIntake:
    """The intake with the incident branch's followers."""
    intake = ForgeIntake(forge_repos(ctx))

    def pushed(repo: str, delivery: Delivery) -> object:
        assert delivery.push is not None
        added = record_push(store=ctx.store, notifier=ctx.notifier, repo=repo, push=delivery.push, now=ctx.clock())
        return f"{added} new commits on {delivery.push.branch}" if added else None

    def request(repo: str, delivery: Delivery) -> object:
        assert delivery.request is not None
        changed = record_request(store=ctx.store, notifier=ctx.notifier, repo=repo, changed=delivery.request,
                                 now=ctx.clock())
        return f"{delivery.request.action} recorded" if changed else None

    intake.follow("push", pushed)
    intake.follow("request", request)
    if ctx.reviews is not None:
        intake.follow("request", partial(review_follower, ctx, ctx.reviews))
    return intake


def review_follower(ctx: AppContext, work: ReviewWork, repo: str, delivery: Delivery) -> object:
    """Queue the request's new head (durable: the sweep runs it if this process dies), then assess
    it on the work pool; the delivery's answer does not wait for git or the forge."""
    settings = next((r for r in ctx.settings.repos if r.name == repo), None)
    if settings is None or not settings.review.risk or delivery.request is None:
        return None
    item = queue_request(work.queue, repo=repo, changed=delivery.request, branch=settings.branch, now=ctx.clock())
    if item is None:
        return None

    def run() -> None:
        try:
            run_one(work, item, now=ctx.clock())
        except Exception as exc:  # logged; the head stays queued for the sweep
            log.exception("review_risk.run_failed", repo=repo, number=item.number, error=str(exc))

    ctx.work_executor.submit(run)
    return f"review risk queued for {item.head_sha[:7]}"


def register_forge_webhooks(app: FastAPI, ctx: AppContext, intake: ForgeIntake | None = None) -> None:
    chosen = intake or branch_intake(ctx)
    secret = ctx.settings.github.webhook_secret
    signature = GitHubSignature(secret.get_secret_value() if secret else None)
    token = ctx.settings.gitlab.webhook_token
    gitlab_token = GitLabToken(token.get_secret_value() if token else None)

    async def handle(forge: str, request: Request, why: Callable[[bytes], str | None],
                     parse: Callable[[bytes], Delivery]) -> JSONResponse:
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            return error(413, "too_large", exc.detail)
        if refusal := why(body):
            log.warning("forge.webhook_refused", forge=forge, reason=refusal)
            return error(401, "unauthorized", refusal)
        try:
            delivery = parse(body)
            answer = await run_in_threadpool(lambda: chosen.dispatch(forge, delivery))
        except InvalidInput as exc:
            return error(422, "invalid_payload", str(exc))
        except TransientError as exc:  # 5xx: the forge delivers it again
            log.warning("forge.webhook_unavailable", forge=forge, error=str(exc))
            return error(503, "unavailable", "storage is unavailable; retry later")
        log.info("forge.webhook", forge=forge, kind=delivery.kind, status=answer["status"])
        return JSONResponse(answer, status_code=202 if answer["status"] == "accepted" else 200)

    @app.post("/webhooks/github")
    async def github_webhook(request: Request) -> JSONResponse:
        """A GitHub repository webhook (push, pull_request); refused (401) before parsing unless signed."""
        event = request.headers.get("x-github-event", "")
        return await handle("github", request,
                            lambda body: signature.refusal(body, request.headers.get("x-hub-signature-256")),
                            lambda body: github_delivery(event, github_json(body, request.headers.get(
                                "content-type", ""))))

    @app.post("/webhooks/gitlab")
    async def gitlab_webhook(request: Request) -> JSONResponse:
        """A GitLab project webhook (Push Hook, Merge Request Hook); refused (401) unless its token matches."""
        event = request.headers.get("x-gitlab-event", "")
        return await handle("gitlab", request,
                            lambda _: gitlab_token.refusal(request.headers.get("x-gitlab-token")),
                            lambda body: gitlab_delivery(event, body))
